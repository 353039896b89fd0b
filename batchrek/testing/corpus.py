"""Test and demo images, made by Pillow on demand (no binary blobs in git).

Every "photo" shows one strong red rectangle at ``box`` (left, top, right, bottom as
ratios of the *displayed* image) on a grey gradient. The emulator reports that red
region as a BoundingBox, so a test can prove that what batchrek sent is what the
user sees, whatever EXIF orientation or downscale happened on the way.

For an EXIF orientation ``o`` the stored pixels are the displayed image transformed
by the inverse of ``o``'s transform, so ``ImageOps.exif_transpose`` gives back the
displayed image exactly as a viewer would show it.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from typing import Final

from PIL import Image, ImageDraw

from batchrek.prepare import TO_DISPLAY

__all__ = [
    "DEFAULT_BOX",
    "Box",
    "animated_gif",
    "bomb_png",
    "cmyk_jpeg",
    "displayed_size",
    "noisy_photo",
    "photo",
    "png16",
    "text_named_jpg",
    "truncated",
]

Box = tuple[float, float, float, float]
DEFAULT_BOX: Final[Box] = (0.25, 0.30, 0.55, 0.70)
RED: Final = (230, 20, 20)

# The inverse of imaging.TO_DISPLAY: it makes stored pixels out of displayed ones.
_TO_STORED: Final = {
    **TO_DISPLAY,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}


def displayed_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """The size a viewer shows for stored pixels of ``width`` x ``height``."""
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _scene(width: int, height: int, box: Box) -> Image.Image:
    """The displayed image: a grey gradient with a red rectangle at ``box``."""
    gradient = Image.linear_gradient("L").resize((width, height))
    img = Image.merge("RGB", (gradient, gradient, gradient)).point(lambda v: 90 + v // 3)
    left, top, right, bottom = box
    ImageDraw.Draw(img).rectangle(
        (
            round(left * width),
            round(top * height),
            round(right * width) - 1,
            round(bottom * height) - 1,
        ),
        fill=RED,
    )
    return img


def _stored(displayed: Image.Image, orientation: int) -> Image.Image:
    if orientation == 1:
        return displayed
    return displayed.transpose(_TO_STORED[orientation])


def _encode(img: Image.Image, fmt: str, orientation: int, **params: object) -> bytes:
    buf = io.BytesIO()
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        params["exif"] = exif.tobytes()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def photo(
    width: int = 640,
    height: int = 480,
    *,
    fmt: str = "JPEG",
    orientation: int = 1,
    box: Box = DEFAULT_BOX,
    quality: int = 90,
) -> bytes:
    """An image *displayed* at ``width`` x ``height`` with the red box at ``box``.

    ``fmt`` is any format Pillow writes (JPEG, PNG, WEBP, TIFF, BMP, GIF). The EXIF
    orientation tag is written for JPEG (and WEBP/PNG/TIFF, where Pillow can).
    """
    stored = _stored(_scene(width, height, box), orientation)
    params: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        params["quality"] = quality
    return _encode(stored, fmt, orientation, **params)


def noisy_photo(
    width: int,
    height: int,
    *,
    orientation: int = 1,
    box: Box = DEFAULT_BOX,
    noise: int = 40,
    quality: int = 95,
    fmt: str = "JPEG",
) -> bytes:
    """A camera-like, high-detail image: the scene plus per-pixel noise.

    Noise is what makes real photos big after compression; ``noise`` (0-255) sets
    its amplitude and so the file size (24 MP at noise 40, quality 95 is ~9 MB).
    """
    scene = _scene(width, height, box)
    grain = Image.frombytes("L", (width, height), os.urandom(width * height))
    grain_rgb = Image.merge("RGB", (grain, grain, grain))
    mixed = Image.blend(scene, grain_rgb, noise / 255)
    # Re-draw the box so it stays strongly red whatever the noise.
    left, top, right, bottom = box
    ImageDraw.Draw(mixed).rectangle(
        (
            round(left * width),
            round(top * height),
            round(right * width) - 1,
            round(bottom * height) - 1,
        ),
        fill=RED,
    )
    params: dict[str, object] = {"quality": quality} if fmt == "JPEG" else {}
    return _encode(_stored(mixed, orientation), fmt, orientation, **params)


def cmyk_jpeg(width: int = 400, height: int = 300, *, box: Box = DEFAULT_BOX) -> bytes:
    return _encode(_scene(width, height, box).convert("CMYK"), "JPEG", 1, quality=90)


def png16(width: int = 400, height: int = 300) -> bytes:
    """A 16-bit greyscale PNG (no red box: the service sees it as grey)."""
    gradient = Image.linear_gradient("L").resize((width, height)).convert("I")
    img = gradient.point(lambda v: v * 257).convert("I;16")
    return _encode(img, "PNG", 1)


def animated_gif(width: int = 320, height: int = 240, *, box: Box = DEFAULT_BOX) -> bytes:
    """Two frames; the first shows the red box, the second is blank grey."""
    first = _scene(width, height, box).convert("P", palette=Image.Palette.ADAPTIVE)
    second = Image.new("RGB", (width, height), (128, 128, 128)).convert("P")
    buf = io.BytesIO()
    first.save(buf, format="GIF", save_all=True, append_images=[second], duration=100, loop=0)
    return buf.getvalue()


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: max(1, int(len(data) * keep))]


def text_named_jpg() -> bytes:
    return b"this is not an image, whatever its name says\n" * 4


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width: int = 40_000, height: int = 40_000) -> bytes:
    """A few hundred bytes that declare a ``width`` x ``height`` RGB PNG.

    Only the header is real: anything that decodes it before checking the size
    would try to allocate gigabytes.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
