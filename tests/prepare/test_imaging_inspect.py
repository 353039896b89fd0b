"""inspect() and fits(): cheap, header-only, and precise about what is wrong."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageFile

# The modules themselves, for patching their globals (``MAX_PIXELS``, ``OPENABLE``).
import batchrek.prepare.imaging._formats as formats
import batchrek.prepare.imaging._inspect as imaging
from batchrek.errors import ItemError
from batchrek.limits import limits_for
from batchrek.prepare.imaging import ImageHeader, fits, inspect
from batchrek.testing import corpus

LABELS = limits_for("detect_labels")


def _code(data: bytes) -> str:
    with pytest.raises(ItemError) as caught:
        inspect(data)
    return caught.value.code


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError("inspect decoded pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_empty_bytes_are_empty_image() -> None:
    assert _code(b"") == "EmptyImage"


def test_text_named_jpg_is_unsupported() -> None:
    assert _code(corpus.text_named_jpg()) == "UnsupportedFormat"


def test_magic_bytes_decide_the_format() -> None:
    assert inspect(corpus.photo(fmt="PNG")).format == "PNG"


@pytest.mark.usefixtures("no_decoding")
def test_bomb_fails_from_the_header_alone() -> None:
    assert _code(corpus.bomb_png()) == "DecompressionBomb"


@pytest.mark.usefixtures("no_decoding")
def test_own_pixel_cap_is_a_bomb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imaging, "MAX_PIXELS", 100_000)
    assert _code(corpus.photo(640, 480)) == "DecompressionBomb"


def test_truncated_jpeg_is_corrupt() -> None:
    assert _code(corpus.truncated(corpus.photo())) == "CorruptImage"


def test_truncated_png_is_corrupt() -> None:
    assert _code(corpus.truncated(corpus.photo(fmt="PNG"))) == "CorruptImage"


def test_jpeg_with_a_trailer_after_eoi_is_complete() -> None:
    header = inspect(corpus.photo() + b"\x00" * 1000 + b"ftypmp42 appended video")
    assert header.format == "JPEG"


def test_heic_without_the_plugin_says_to_install_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(formats, "OPENABLE", formats.OPENABLE - {"HEIF"})
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    with pytest.raises(ItemError, match=r"batchrek\[heif\]") as caught:
        inspect(heic)
    assert caught.value.code == "UnsupportedFormat"


@pytest.mark.usefixtures("no_decoding")
def test_orientation_comes_from_the_header() -> None:
    header = inspect(corpus.photo(640, 480, orientation=6))
    assert (header.width, header.height, header.orientation) == (480, 640, 6)


def test_stats_are_the_displayed_size() -> None:
    stats = inspect(corpus.photo(640, 480, orientation=8)).stats()
    assert (stats.width, stats.height) == (640, 480)


def test_gif_frames_are_counted() -> None:
    assert inspect(corpus.animated_gif()).frames == 2


def _header(**changes: object) -> ImageHeader:
    base: dict[str, object] = {"format": "JPEG", "bytes": 100_000, "width": 640, "height": 480}
    return ImageHeader(**{**base, **changes})  # type: ignore[arg-type]


def test_fits_a_small_rgb_jpeg() -> None:
    assert fits(_header(), LABELS)


def test_does_not_fit_webp() -> None:
    assert not fits(_header(format="WEBP"), LABELS)


def test_does_not_fit_over_the_byte_cap() -> None:
    assert not fits(_header(bytes=LABELS.bytes_cap + 1), LABELS)


def test_does_not_fit_over_the_capped_operations_cap() -> None:
    assert not fits(_header(bytes=4_500_000), limits_for("detect_protective_equipment"))


def test_does_not_fit_over_the_ppe_side() -> None:
    ppe = limits_for("detect_protective_equipment")
    assert not fits(_header(width=5000, height=3000), ppe)


def test_does_not_fit_cmyk() -> None:
    assert not fits(inspect(corpus.cmyk_jpeg()), LABELS)


def test_does_not_fit_png_with_an_orientation() -> None:
    # The service ignores orientation in PNG; a viewer honours it.
    assert not fits(_header(format="PNG", mode="RGB", orientation=6), LABELS)


def test_fits_a_jpeg_with_an_orientation() -> None:
    assert fits(_header(orientation=6), LABELS)


def test_does_not_fit_under_the_minimum_side() -> None:
    assert not fits(_header(width=60, height=60), LABELS)


def test_inspect_reads_every_format_pillow_writes() -> None:
    formats = {inspect(corpus.photo(fmt=f)).format for f in ("WEBP", "TIFF", "BMP", "GIF")}
    assert formats == {"WEBP", "TIFF", "BMP", "GIF"}


def test_header_mode_is_reported() -> None:
    buf = io.BytesIO()
    Image.new("RGBA", (100, 100)).save(buf, format="PNG")
    assert inspect(buf.getvalue()).mode == "RGBA"
