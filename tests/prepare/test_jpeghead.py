"""The pure-Python JPEG header walk agrees with Pillow, or steps aside for it."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from batchrek.errors import ItemError
from batchrek.prepare.imaging import ImageHeader, inspect
from batchrek.prepare.imaging._inspect import _inspect_with_pillow
from batchrek.prepare.imaging._jpeghead import read_jpeg_head
from batchrek.testing import corpus


def _exif(orientation: int, *, order: str = "<", kind: int = 3) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    raw = exif.tobytes()
    if order == ">":  # rewrite as big-endian by hand: Pillow writes little-endian
        ifd = io.BytesIO()
        ifd.write(b"MM\x00\x2a\x00\x00\x00\x08\x00\x01")
        ifd.write((0x0112).to_bytes(2, "big") + kind.to_bytes(2, "big"))
        ifd.write((1).to_bytes(4, "big") + orientation.to_bytes(2, "big") + b"\x00\x00")
        ifd.write(b"\x00\x00\x00\x00")
        raw = b"Exif\x00\x00" + ifd.getvalue()
    return raw


def _jpeg(mode: str = "RGB", **save: object) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (120, 90), "red" if mode != "CMYK" else (0, 255, 255, 0)).save(
        buf, format="JPEG", **save
    )
    return buf.getvalue()


CASES = {
    **{f"orientation-{o}": corpus.photo(200, 100, orientation=o) for o in range(1, 9)},
    "grey": _jpeg("L"),
    "cmyk": corpus.cmyk_jpeg(),
    "progressive": _jpeg(progressive=True),
    "restart-markers": _jpeg(restart_marker_blocks=1),
    "icc": _jpeg(icc_profile=b"\x00" * 200),
    "optimized": _jpeg(optimize=True),
    "big-endian-exif": _jpeg(exif=_exif(6, order=">")),
    "out-of-range-orientation": _jpeg(exif=_exif(9)),
    "long-orientation": _jpeg(exif=_exif(6, order=">", kind=4)),
    "xmp-orientation": _jpeg(
        xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
        b'tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_agrees_with_pillow(name: str) -> None:
    data = CASES[name]
    assert inspect(data) == _inspect_with_pillow(data, "JPEG")


def test_takes_the_fast_path_for_ordinary_photos() -> None:
    head = read_jpeg_head(corpus.photo(640, 480, orientation=6))
    assert head is not None
    assert (head.width, head.height, head.mode, head.orientation, head.complete) == (
        480,
        640,
        "RGB",
        6,
        True,
    )


@pytest.mark.parametrize("name", ["long-orientation", "xmp-orientation"])
def test_steps_aside_where_pillow_reads_more(name: str) -> None:
    assert read_jpeg_head(CASES[name]) is None


def test_first_exif_block_counts() -> None:
    data = corpus.photo(200, 100, orientation=3)
    second = _exif(6)
    app1 = b"\xff\xe1" + (len(second) + 2).to_bytes(2, "big") + second
    sos = data.index(b"\xff\xda")
    doubled = data[:sos] + app1 + data[sos:]
    head = read_jpeg_head(doubled)
    assert head is not None
    assert head.orientation == 3
    assert inspect(doubled) == _inspect_with_pillow(doubled, "JPEG")


@pytest.mark.parametrize("keep", [0.02, 0.1, 0.5, 0.9, 0.999])
def test_truncation_is_corrupt_either_way(keep: float) -> None:
    data = corpus.truncated(corpus.photo(640, 480), keep)
    with pytest.raises(ItemError) as fast:
        inspect(data)
    assert fast.value.code == "CorruptImage"


def test_bomb_is_caught_before_anything_else() -> None:
    data = bytearray(_jpeg())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (40_000).to_bytes(2, "big") * 2
    with pytest.raises(ItemError) as caught:
        inspect(bytes(data))
    assert caught.value.code == "DecompressionBomb"


def test_header_is_the_dataclass_callers_expect() -> None:
    assert isinstance(inspect(corpus.photo()), ImageHeader)
