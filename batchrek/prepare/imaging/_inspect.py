"""Read an image's header cheaply and refuse what must never be decoded or sent.

    inspect(bytes) ──▶ ImageHeader ── fits()? ──yes──▶ send the original bytes, unchanged
                                          └──no───▶ transcode() (see ``transcode.py``)

Only the header is read, never the pixels: the format from magic bytes, the size, the
EXIF orientation still to apply, the mode. What a header read refuses: a
decompression bomb (declared pixels over ``MAX_PIXELS`` or Pillow's own cap), a
truncated JPEG or PNG (no end marker: such a file may be sent as is, so it is
checked), an unknown format or one whose optional decoder is missing.

Pure and synchronous. Pillow work must not run on the event loop: callers go through
``batchrek.prepare.pool.ImagePool``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final

from PIL import Image, ImageFile

from batchrek.errors import ItemError
from batchrek.limits import ImageLimits
from batchrek.models import ImageStats
from batchrek.prepare.imaging._jpeghead import ORIENTATION_TAG, read_jpeg_head

__all__ = [
    "MAX_PIXELS",
    "ImageHeader",
    "check_pixels",
    "fits",
    "inspect",
    "open_image",
]

# A truncated file must fail loudly, never decode to a half-grey image. Set here, where
# every user of Pillow in batchrek (transcode, worker processes) imports it first.
ImageFile.LOAD_TRUNCATED_IMAGES = False


# Twice the largest image the service takes (10,000 x 10,000): above this the header
# is lying or the image is not worth decoding. Pillow's own guard (2 x
# Image.MAX_IMAGE_PIXELS, ~179 MP by default) may trip first; it maps to the same code.
MAX_PIXELS: Final = 2 * 10_000 * 10_000

_SERVICE_FORMATS: Final = frozenset({"JPEG", "PNG"})
# Modes every decoder reads; CMYK JPEG and 16-bit PNG are transcoded to be safe.
_SAFE_MODES: Final = {
    "JPEG": frozenset({"L", "RGB"}),
    "PNG": frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA"}),
}
# Formats that need an optional decoder (pillow-heif, or a Pillow built with libavif).
_EXTRA_FORMATS: Final = frozenset({"HEIF", "AVIF"})


def _register_optional_decoders() -> frozenset[str]:
    """HEIC via pillow-heif when installed (the ``batchrek[heif]`` extra)."""
    try:
        import pillow_heif
    except ImportError:
        pass
    else:
        pillow_heif.register_heif_opener()
    Image.init()
    return frozenset(Image.OPEN)


_OPENABLE: frozenset[str] = _register_optional_decoders()


def _tiff_self_orients() -> bool:
    """Whether Pillow applies a TIFF's orientation itself (it reports displayed size
    at open and transposes at load since Pillow 12); probed on a 2x1 image."""
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    buf = io.BytesIO()
    Image.new("L", (2, 1)).save(buf, format="TIFF", exif=exif.tobytes())
    return Image.open(buf).size == (1, 2)


_TIFF_SELF_ORIENTS: Final = _tiff_self_orients()


@dataclass(frozen=True, slots=True)
class ImageHeader:
    """What the header says, read without decoding a pixel."""

    format: str
    bytes: int
    width: int  # stored
    height: int  # stored
    orientation: int = 1
    mode: str = "RGB"
    frames: int = 1

    @property
    def transposed(self) -> bool:
        return self.orientation in (5, 6, 7, 8)

    @property
    def displayed_width(self) -> int:
        return self.height if self.transposed else self.width

    @property
    def displayed_height(self) -> int:
        return self.width if self.transposed else self.height

    def stats(self) -> ImageStats:
        return ImageStats(
            self.format, self.bytes, self.displayed_width, self.displayed_height, self.orientation
        )


def inspect(data: bytes) -> ImageHeader:
    """Format (from magic bytes), size, orientation; no full decode.

    JPEG and PNG may be sent as they are, so they are also checked for truncation
    (an end marker after the first scan / an IEND chunk): a cheap byte search.
    """
    if not data:
        raise ItemError("EmptyImage", "the image has 0 bytes")
    fmt = _magic(data)
    if fmt is None:
        raise ItemError("UnsupportedFormat", "not a recognised image format (by its magic bytes)")
    if fmt == "JPEG":
        head = read_jpeg_head(data)  # ~10 us where Pillow's open costs ~60-120 us
        if head is not None:
            _check_header(fmt, head.width, head.height, complete=head.complete)
            return ImageHeader(
                format=fmt,
                bytes=len(data),
                width=head.width,
                height=head.height,
                orientation=head.orientation,
                mode=head.mode,
            )
    return _inspect_with_pillow(data, fmt)


def _inspect_with_pillow(data: bytes, fmt: str) -> ImageHeader:
    im = open_image(data, fmt)
    width, height = im.size
    complete = True  # other formats are transcoded: the decoder judges them
    if fmt == "JPEG":
        complete = _jpeg_complete(data)
    elif fmt == "PNG":
        complete = _png_complete(data)
    _check_header(fmt, width, height, complete=complete)
    return ImageHeader(
        format=fmt,
        bytes=len(data),
        width=width,
        height=height,
        orientation=_orientation(im),
        mode=im.mode,
        frames=int(getattr(im, "n_frames", 1)),
    )


def _check_header(fmt: str, width: int, height: int, *, complete: bool) -> None:
    """What a header read must refuse: a bomb first, then a truncated file."""
    check_pixels(fmt, width, height)
    if not complete:
        raise ItemError("CorruptImage", f"{fmt} data is truncated (no end-of-image marker)")


def fits(header: ImageHeader, limits: ImageLimits, *, cap: int | None = None) -> bool:
    """Whether the original bytes can go to the service unchanged."""
    cap = limits.bytes_cap if cap is None else cap
    sides = (header.displayed_width, header.displayed_height)
    return (
        header.format in _SERVICE_FORMATS
        and header.mode in _SAFE_MODES[header.format]
        and header.bytes <= cap
        and min(sides) >= limits.min_side
        and max(sides) <= limits.max_side
        # The service honours EXIF orientation in JPEG only; a viewer honours it in PNG.
        and (header.format == "JPEG" or header.orientation == 1)
    )


def _require_decoder(fmt: str) -> None:
    if fmt not in _OPENABLE:
        if fmt in _EXTRA_FORMATS:
            raise ItemError(
                "UnsupportedFormat",
                f"{fmt} needs an optional decoder: pip install 'batchrek[heif]'",
            )
        raise ItemError("UnsupportedFormat", f"this Pillow cannot decode {fmt}")


def _magic(data: bytes) -> str | None:
    """The format by magic bytes; a file's name is never trusted."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if data[:2] == b"BM" and int.from_bytes(data[14:18], "little") in (
        12,
        40,
        52,
        56,
        64,
        108,
        124,
    ):
        return "BMP"
    if data[4:8] == b"ftyp":
        return _iso_brand(data)
    return None


def _iso_brand(data: bytes) -> str | None:
    """HEIF or AVIF from an ISO-BMFF ``ftyp`` box (major and compatible brands)."""
    end = min(int.from_bytes(data[:4], "big"), len(data), 256)
    brands = {data[8:12]} | {data[i : i + 4] for i in range(16, end - 3, 4)}
    if brands & {b"avif", b"avis"}:
        return "AVIF"
    heif = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"mif2"}
    return "HEIF" if brands & heif else None


def open_image(data: bytes, fmt: str) -> ImageFile.ImageFile:
    """Parse the header only (transcode decodes from it). Not closed by us: the
    buffer holds no OS resource."""
    _require_decoder(fmt)
    try:
        return Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError as exc:
        raise ItemError("DecompressionBomb", f"declared size is over Pillow's cap: {exc}") from exc
    except Exception as exc:  # any parse failure of untrusted bytes is "corrupt"
        raise ItemError("CorruptImage", f"{fmt} header cannot be read: {exc}") from exc


def check_pixels(fmt: str, width: int, height: int) -> None:
    """Refuse a bomb by our own cap; ``MAX_PIXELS`` is read at each call."""
    if width * height > MAX_PIXELS:
        raise ItemError(
            "DecompressionBomb",
            f"{fmt} declares {width}x{height} px, over the {MAX_PIXELS:,} px cap",
        )


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation still to apply (1 where the decoder applies it itself)."""
    if im.format == "TIFF" and _TIFF_SELF_ORIENTS:
        return 1
    # PNG's getexif() decodes the whole image to look for a late eXIf chunk; a header
    # read must not, so EXIF found in the header is parsed directly.
    raw = im.info.get("exif")
    if isinstance(raw, bytes):
        exif = Image.Exif()
        exif.load(raw)
    elif im.format == "PNG":
        return 1
    else:
        exif = im.getexif()
    value = exif.get(ORIENTATION_TAG, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _jpeg_complete(data: bytes) -> bool:
    """Whether an EOI marker follows the first scan. Entropy-coded data never holds
    0xFFD9, so its absence means truncation; data after EOI (phone trailers, motion
    photos) is allowed."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return True  # unusual layout: let the decoder judge
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
        elif marker == 0xDA:  # searched from the end: found at once in a whole file
            return data.rfind(b"\xff\xd9") > i
        elif 0xD0 <= marker <= 0xD8 or marker == 0x01:
            i += 2
        else:
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return False


def _png_complete(data: bytes) -> bool:
    return data.rfind(b"IEND\xaeB`\x82") != -1
