"""Boxes and sizes are those of the displayed image, whatever the EXIF orientation."""

from __future__ import annotations

from typing import Any

import pytest

from batchrek.testing import corpus
from tests.emulator.test_emulator_operations import corners


def _size_and_box(rekognition: Any, data: bytes) -> tuple[str, tuple[float, ...]]:
    labels = rekognition.detect_labels(Image={"Bytes": data})["Labels"]
    (canvas,) = [x for x in labels if x["Name"] == "Canvas"]
    (red,) = [x for x in labels if x["Name"] == "Red Region"]
    return canvas["Aliases"][0]["Name"], corners(red["Instances"][0]["BoundingBox"])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_reports_the_displayed_size(rekognition: Any, orientation: int) -> None:
    size, _ = _size_and_box(rekognition, corpus.photo(640, 480, orientation=orientation))
    assert size == "640x480"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_reports_the_displayed_box(rekognition: Any, orientation: int) -> None:
    _, box = _size_and_box(rekognition, corpus.photo(640, 480, orientation=orientation))
    assert box == pytest.approx(corpus.DEFAULT_BOX, abs=0.01)


@pytest.mark.parametrize("orientation", range(2, 9))
def test_every_orientation_matches_the_upright_box(rekognition: Any, orientation: int) -> None:
    _, upright = _size_and_box(rekognition, corpus.photo(640, 480))
    _, box = _size_and_box(rekognition, corpus.photo(640, 480, orientation=orientation))
    assert box == pytest.approx(upright, abs=0.005)


def test_png_is_not_rotated(rekognition: Any) -> None:
    # Pillow writes the EXIF tag into PNG too; the service ignores it for PNG.
    data = corpus.photo(640, 480, fmt="PNG", orientation=6)
    size, _ = _size_and_box(rekognition, data)
    assert size == "480x640"


def test_big_image_box_is_found_from_a_reduced_copy(rekognition: Any) -> None:
    data = corpus.photo(4000, 3000, quality=80)
    _, box = _size_and_box(rekognition, data)
    assert box == pytest.approx(corpus.DEFAULT_BOX, abs=0.01)
