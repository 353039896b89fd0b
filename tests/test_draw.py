"""Boxes onto pixels: a box (ratios of the displayed image) mapped onto the stored
pixels lands on the red region the corpus drew, in every EXIF orientation; the README
shows the same mapping, and it works as shown."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops

from batchrek.draw import box_on_stored, boxes
from batchrek.testing import corpus

README = Path(__file__).resolve().parent.parent / "README.md"
LEFT, TOP, RIGHT, BOTTOM = corpus.DEFAULT_BOX
BOX = {"Left": LEFT, "Top": TOP, "Width": RIGHT - LEFT, "Height": BOTTOM - TOP}


def _red_in_stored(orientation: int) -> tuple[int, int, int, int]:
    data = corpus.photo(400, 300, orientation=orientation, fmt="PNG")  # lossless pixels
    with Image.open(io.BytesIO(data)) as stored:
        bands = [
            band.point(lambda v, t=target: 255 if abs(v - t) <= 30 else 0)
            for band, target in zip(stored.convert("RGB").split(), corpus.RED, strict=True)
        ]
    box = ImageChops.multiply(ImageChops.multiply(bands[0], bands[1]), bands[2]).getbbox()
    assert box is not None
    return box


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_box_lands_on_the_stored_pixels(orientation: int) -> None:
    width, height = corpus.displayed_size(400, 300, 1)  # displayed 400 x 300
    got = box_on_stored(BOX, width, height, orientation)
    expected = _red_in_stored(orientation)
    assert all(abs(g - e) <= 1 for g, e in zip(got, expected, strict=True)), (got, expected)


def _readme_mapping() -> Any:
    block = re.search(r"```python\n(def box_on_stored.*?)```", README.read_text(), re.S)
    assert block is not None, "README shows box_on_stored"
    namespace: dict[str, Any] = {}
    exec(block.group(1), namespace)
    return namespace["box_on_stored"]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_readmes_mapping_is_the_same(orientation: int) -> None:
    image = {"width": 400, "height": 300, "orientation": orientation}
    assert _readme_mapping()(BOX, image) == box_on_stored(BOX, 400, 300, orientation)


def test_boxes_are_found_in_any_operations_response() -> None:
    response = {
        "Labels": [{"Name": "Red Region", "Instances": [{"BoundingBox": BOX}]}],
        "FaceDetails": [{"BoundingBox": BOX}],
        "TextDetections": [{"DetectedText": "RED", "Geometry": {"BoundingBox": BOX}}],
        "SearchedFaceBoundingBox": BOX,
    }
    assert [label for label, _ in boxes(response)] == [
        "Red Region", "BoundingBox", "RED", "SearchedFaceBoundingBox",
    ]  # fmt: skip
