"""Odd and hostile files, made at test time (no binary blobs in git).

Every image here shows the corpus scene (the red box at ``corpus.DEFAULT_BOX``) so a
test can prove what reached the service; the rest are files that must be refused
precisely: PostScript, a TIFF whose strips are garbage, a JPEG whose EXIF block is
malformed (the pixels are fine).
"""

from __future__ import annotations

import io
import random
import struct
from typing import Final

from PIL import Image, ImageDraw

from batchrek.testing import corpus

__all__ = [
    "EPS",
    "PILLOW_WRITES",
    "bilevel_scan",
    "few_colour_tiff",
    "in_format",
    "jpeg_with_app_segment",
    "malformed_exif_jpeg",
    "mpo",
    "psd",
    "scene",
    "undecodable_tiff",
]

# Formats Pillow writes that batchrek must read back (the rest are made by hand).
PILLOW_WRITES: Final = ("TGA", "JPEG2000", "PPM", "SGI", "DDS", "ICO", "QOI", "PCX")

# A tiny but well-formed Encapsulated PostScript file: decoding it would need
# Ghostscript, which batchrek must never start.
EPS: Final = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n"
    b"%%BoundingBox: 0 0 100 100\n"
    b"%%EndComments\n"
    b"newpath 10 10 moveto 90 90 lineto stroke\n"
    b"showpage\n"
    b"%%EOF\n"
)


def scene(width: int = 320, height: int = 240) -> Image.Image:
    """The corpus scene (gradient and red box) as an RGB image."""
    return Image.open(io.BytesIO(corpus.photo(width, height, fmt="PNG"))).convert("RGB")


def in_format(fmt: str, width: int = 320, height: int = 240) -> bytes:
    """The scene written by Pillow as ``fmt`` (one of ``PILLOW_WRITES``); an icon is
    at most 256 px a side."""
    buf = io.BytesIO()
    if fmt == "ICO":
        width, height = min(width, 256), min(height, 256)
    img = scene(width, height)
    if fmt == "ICO":
        img.save(buf, format="ICO", sizes=[(width, height)])
    else:
        img.save(buf, format=fmt)
    return buf.getvalue()


def psd(width: int = 320, height: int = 240) -> bytes:
    """A Photoshop file by hand (Pillow reads PSD but cannot write it): RGB, 8 bit,
    raw planes, no layers."""
    img = scene(width, height)
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    sections = struct.pack(">III", 0, 0, 0)  # colour mode data, resources, layers
    planes = b"".join(band.tobytes() for band in img.split())
    return header + sections + struct.pack(">H", 0) + planes


def _app1_exif(tiff: bytes) -> bytes:
    body = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


def jpeg_with_app_segment(segment: bytes, width: int = 320, height: int = 240) -> bytes:
    """A good JPEG with ``segment`` (a whole marker segment) right after SOI."""
    data = corpus.photo(width, height)
    return data[:2] + segment + data[2:]


def malformed_exif_jpeg(kind: str = "not-tiff", width: int = 320, height: int = 240) -> bytes:
    """A good JPEG whose EXIF block cannot be parsed: ``not-tiff`` (no byte-order
    mark: Pillow says "not a TIFF file") or ``truncated`` (the block ends inside the
    offset of its first IFD: "unpack requires a buffer of 4 bytes")."""
    if kind == "not-tiff":
        tiff = b"XX\x00\x2a\x00\x00\x00\x08" + b"\x00" * 16
    elif kind == "truncated":
        tiff = b"II\x2a\x00\x08\x00"
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return jpeg_with_app_segment(_app1_exif(tiff), width, height)


def bilevel_scan(width: int = 1700, height: int = 2200, *, seed: int = 7) -> bytes:
    """A 1-bit, CCITT Group 4 TIFF that looks like a typed page (a fax or scan),
    with a solid black block where the corpus puts its red box."""
    rng = random.Random(seed)
    img = Image.new("1", (width, height), 1)
    draw = ImageDraw.Draw(img)
    for top in range(height // 12, height - height // 12, 28):
        x = width // 12
        while x < width - width // 12:
            word = rng.randint(10, 60)
            draw.rectangle((x, top, x + word, top + 16), fill=0)
            x += word + rng.randint(8, 18)
    left, upper, right, lower = corpus.DEFAULT_BOX
    draw.rectangle(
        (round(left * width), round(upper * height), round(right * width), round(lower * height)),
        fill=0,
    )
    buf = io.BytesIO()
    img.save(buf, format="TIFF", compression="group4", dpi=(200, 200))
    return buf.getvalue()


def few_colour_tiff(width: int = 320, height: int = 240) -> bytes:
    """An RGB TIFF with four colours (a chart or diagram): PNG keeps it exact."""
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, width // 4, height), fill=(30, 60, 200))
    draw.rectangle((width // 2, height // 3, width - 1, height - 1), fill=(240, 200, 40))
    left, upper, right, lower = corpus.DEFAULT_BOX
    draw.rectangle(
        (round(left * width), round(upper * height), round(right * width), round(lower * height)),
        fill=corpus.RED,
    )
    buf = io.BytesIO()
    img.save(buf, format="TIFF", compression="tiff_lzw")
    return buf.getvalue()


def undecodable_tiff(width: int = 320, height: int = 240) -> bytes:
    """A TIFF whose header is sound and whose compressed strip is garbage: the header
    reads, the decode fails."""
    good = io.BytesIO()
    scene(width, height).save(good, format="TIFF", compression="tiff_adobe_deflate")
    data = bytearray(good.getvalue())
    tags = Image.open(io.BytesIO(bytes(data))).getexif()  # a TIFF's IFD0
    offsets = tags[273]  # StripOffsets
    counts = tags[279]  # StripByteCounts
    if isinstance(offsets, int):
        offsets, counts = (offsets,), (counts,)
    rng = random.Random(3)
    for offset, count in zip(offsets, counts, strict=True):
        data[offset : offset + count] = bytes(rng.randrange(256) for _ in range(count))
    return bytes(data)


def mpo(width: int = 320, height: int = 240) -> bytes:
    """A multi-picture JPEG (MPO, as 3D cameras and some phones write): the scene
    first, a blank grey picture second."""
    first = scene(width, height)
    second = Image.new("RGB", (width, height), (128, 128, 128))
    buf = io.BytesIO()
    first.save(buf, format="MPO", save_all=True, append_images=[second], quality=90)
    return buf.getvalue()
