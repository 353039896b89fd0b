"""The format allow-list: every raster format Pillow decodes in the process is read,
EPS/PostScript never is (no Ghostscript, no other program), and every failure has a
precise code that names what was found."""

from __future__ import annotations

import io
import subprocess
from typing import Any

import pytest
from PIL import Image

from batchrek.errors import ItemError
from batchrek.limits import limits_for
from batchrek.prepare.imaging import (
    NEVER,
    OPENABLE,
    READABLE,
    accepted_formats,
    extensions_for,
    inspect,
    transcode,
)
from batchrek.prepare.imaging._inspect import pillow_errors
from batchrek.testing import corpus, oddfiles

LABELS = limits_for("detect_labels")


def _refusal(data: bytes, accepted: frozenset[str] | None = None) -> ItemError:
    with pytest.raises(ItemError) as caught:
        inspect(data, accepted or accepted_formats())
    return caught.value


@pytest.fixture
def no_programs(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Any attempt to start a program (Ghostscript, a viewer) fails the test."""
    started: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        started.append(args)
        raise AssertionError(f"a program was started: {args!r}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(subprocess, "check_call", refuse)
    return started


def test_eps_is_refused_naming_ghostscript(no_programs: list[Any]) -> None:
    error = _refusal(oddfiles.EPS)
    assert (error.code, "Ghostscript" in error.message, no_programs) == (
        "UnsupportedFormat",
        True,
        [],
    )


def test_no_open_anywhere_in_the_process_can_reach_the_eps_plugin(
    no_programs: list[Any],
) -> None:
    """Defence in depth: even an Image.open with every format (what some plugins do
    for embedded data) cannot pick EPS: it is unregistered."""
    with pytest.raises(Image.UnidentifiedImageError):
        Image.open(io.BytesIO(oddfiles.EPS)).load()
    assert no_programs == []


def test_never_formats_are_not_registered_with_pillow() -> None:
    assert set(NEVER) & set(Image.OPEN) == set()


def test_the_allow_list_and_the_refused_list_do_not_overlap() -> None:
    assert set(READABLE) & set(NEVER) == set()


def test_this_pillow_opens_every_allowed_format_but_the_optional_ones() -> None:
    assert set(READABLE) - OPENABLE <= {"HEIF", "AVIF"}


@pytest.mark.parametrize("fmt", oddfiles.PILLOW_WRITES)
def test_each_format_pillow_writes_is_transcoded(fmt: str, no_programs: list[Any]) -> None:
    data = oddfiles.in_format(fmt)
    header = inspect(data)
    out = transcode(data, header, LABELS)
    assert (header.format, out.sent.format in ("JPEG", "PNG")) == (fmt, True)


def test_psd_is_transcoded() -> None:
    data = oddfiles.psd()
    out = transcode(data, inspect(data), LABELS)
    assert (out.original.format, out.sent.width, out.sent.height) == ("PSD", 320, 240)


def test_a_tga_whose_first_bytes_look_like_a_cursor_is_still_a_tga() -> None:
    data = oddfiles.in_format("TGA")
    assert data[:4] == b"\x00\x00\x02\x00"  # the CUR signature
    assert inspect(data).format == "TGA"


def test_an_undecodable_tiff_is_a_corrupt_image() -> None:
    data = oddfiles.undecodable_tiff()
    with pytest.raises(ItemError) as caught:
        transcode(data, inspect(data), LABELS)
    assert (caught.value.code, caught.value.retryable) == ("CorruptImage", False)


@pytest.mark.parametrize("kind", ["not-tiff", "truncated"])
def test_a_malformed_exif_block_never_fails_the_image(kind: str) -> None:
    header = inspect(oddfiles.malformed_exif_jpeg(kind))
    assert (header.format, header.orientation, header.exif_error is not None) == (
        "JPEG",
        1,
        True,
    )


@pytest.mark.filterwarnings("ignore:Image appears to be a malformed MPO file")
def test_a_malformed_mpf_segment_is_still_a_jpeg() -> None:
    data = oddfiles.jpeg_with_app_segment(b"\xff\xe2\x00\x10MPF\x00garbage!!")
    assert inspect(data).format == "JPEG"


def test_a_multi_picture_jpeg_is_a_jpeg_and_its_first_picture_is_transcoded() -> None:
    data = oddfiles.mpo(640, 480)
    header = inspect(data)
    out = transcode(data, header, limits_for("detect_labels"), cap=len(data) // 3)
    decoded = Image.open(io.BytesIO(out.data)).convert("RGB")
    red = decoded.getpixel((int(0.4 * decoded.width), int(0.5 * decoded.height)))
    assert (header.format, out.sent.format) == ("JPEG", "JPEG")
    assert isinstance(red, tuple)
    assert red[0] > 180
    assert red[1] < 80


def test_a_bilevel_scan_becomes_an_exact_1_bit_png() -> None:
    data = oddfiles.bilevel_scan()
    out = transcode(data, inspect(data), LABELS)
    back = Image.open(io.BytesIO(out.data))
    original = Image.open(io.BytesIO(data))
    assert (out.sent.format, back.mode) == ("PNG", "1")
    assert back.tobytes() == original.tobytes()


def test_a_bilevel_scan_stays_small() -> None:
    """A JPEG of a fax grew ~10x in the field; the 1-bit PNG stays near the TIFF."""
    data = oddfiles.bilevel_scan()
    out = transcode(data, inspect(data), LABELS)
    assert out.sent.bytes < 2 * len(data)


def test_a_few_colour_tiff_becomes_an_exact_png() -> None:
    data = oddfiles.few_colour_tiff()
    out = transcode(data, inspect(data), LABELS)
    back = Image.open(io.BytesIO(out.data)).convert("RGB")
    assert out.sent.format == "PNG"
    assert back.tobytes() == Image.open(io.BytesIO(data)).convert("RGB").tobytes()


def test_a_16_bit_png_keeps_its_tones() -> None:
    data = corpus.png16()
    out = transcode(data, inspect(data), LABELS)
    levels = Image.open(io.BytesIO(out.data)).convert("L").getcolors(256)
    assert levels is not None
    assert len(levels) > 200


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
        (b"<!DOCTYPE html><html><body>Not Found</body></html>", "HTML"),
        (b"  <svg xmlns='http://www.w3.org/2000/svg'></svg>", "SVG"),
        (b"PK\x03\x04\x14\x00\x00\x00", "ZIP"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video"),
        (b"this is not an image at all", "74 68 69 73"),
    ],
)
def test_unsupported_format_names_what_was_found(data: bytes, named: str) -> None:
    error = _refusal(data)
    assert (error.code, named in error.message) == ("UnsupportedFormat", True)


def test_input_formats_narrow_what_is_read() -> None:
    error = _refusal(oddfiles.psd(), accepted_formats(["jpeg", "png", "webp"]))
    assert (error.code, "PSD is not in input_formats" in error.message) == (
        "UnsupportedFormat",
        True,
    )


def test_jpeg_and_png_are_always_accepted() -> None:
    assert accepted_formats(["tiff"]) == {"TIFF", "JPEG", "PNG"}


def test_input_format_aliases() -> None:
    assert accepted_formats(["jpg", "tif", "heic", "jp2"]) == {
        "JPEG",
        "PNG",
        "TIFF",
        "HEIF",
        "JPEG2000",
    }


def test_an_unknown_input_format_is_named() -> None:
    with pytest.raises(ValueError, match="XCF"):
        accepted_formats(["xcf"])


def test_extensions_follow_the_formats() -> None:
    every = extensions_for(accepted_formats())
    assert {"apng", "avifs", "jfif", "jpe", "psd", "tga", "jp2", "qoi"} <= every
    assert {"eps", "ps", "pdf", "wmf"} & every == set()
    assert "psd" not in extensions_for(accepted_formats(["jpeg"]))


@pytest.mark.parametrize(
    ("raised", "code"),
    [
        (OSError("decoder jpeg2k not available"), "UnsupportedFormat"),
        (MemoryError(), "DecompressionBomb"),
        (Image.DecompressionBombError("too big"), "DecompressionBomb"),
        (ValueError("conversion not supported"), "CorruptImage"),
        (SyntaxError("broken"), "CorruptImage"),
        (OSError("image file is truncated"), "CorruptImage"),
    ],
)
def test_pillow_errors_become_precise_codes(raised: BaseException, code: str) -> None:
    with pytest.raises(ItemError) as caught, pillow_errors("TIFF", "decode"):
        raise raised
    assert caught.value.code == code
