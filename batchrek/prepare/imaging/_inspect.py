"""Read an image's header cheaply and refuse what must never be decoded or sent.

    inspect(bytes) ──▶ ImageHeader ── fits()? ──yes──▶ send the original bytes, unchanged
                                          └──no───▶ transcode() (see ``_transcode.py``)

Only the header is read, never the pixels: the format (``_formats``: magic bytes,
then Pillow's identification over the allow-list), the size, the EXIF orientation
still to apply, the mode. What a header read refuses: a decompression bomb
(declared pixels over ``MAX_PIXELS`` or Pillow's own cap), a truncated JPEG or PNG
(no end marker: such a file may be sent as is, so it is checked), a format that is
not on the allow-list or not in ``input_formats``, or whose optional decoder is
missing. An EXIF block that cannot be parsed never fails an image: orientation 1 is
assumed and the header says why (``exif_error``), for the record's ``warnings``.

This module is the named boundary for Pillow's errors (``pillow_errors``): whatever
Pillow raises on untrusted bytes becomes a precise ``ItemError`` (CorruptImage,
DecompressionBomb, UnsupportedFormat), never an unclassified exception.

Pure and synchronous. Pillow work must not run on the event loop: callers go through
``batchrek.prepare.pool.ImagePool``.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from PIL import Image, ImageFile

from batchrek.errors import ItemError
from batchrek.limits import ImageLimits
from batchrek.models import ImageStats
from batchrek.prepare.imaging._formats import (
    READABLE,
    fast_format,
    identify,
    require_decoder,
)
from batchrek.prepare.imaging._jpeghead import ORIENTATION_TAG, read_jpeg_head

__all__ = [
    "MAX_PIXELS",
    "ImageHeader",
    "check_pixels",
    "fits",
    "inspect",
    "open_image",
    "pillow_errors",
]

# A truncated file must fail loudly, never decode to a half-grey image. Set here, where
# every user of Pillow in batchrek (transcode, worker processes) imports it first.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Hostile files make Pillow warn ("Corrupt EXIF data", "malformed MPO") once each: a
# run over a bucket of them would fill the log. What matters reaches the record.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


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
_EVERY_FORMAT: Final = frozenset(READABLE)


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
    exif_error: str | None = None  # the EXIF block could not be parsed: orientation 1

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


def inspect(data: bytes, accepted: frozenset[str] = _EVERY_FORMAT) -> ImageHeader:
    """Format, size, orientation; no full decode. ``accepted`` narrows the formats
    (the ``input_formats`` setting); JPEG and PNG are always accepted.

    JPEG and PNG may be sent as they are, so they are also checked for truncation
    (an end marker after the first scan / an IEND chunk): a cheap byte search. Other
    formats open through Pillow, and some plugins decode while opening: call this in
    a worker process for anything ``fast_format`` does not call JPEG or PNG.
    """
    if not data:
        raise ItemError("EmptyImage", "the image has 0 bytes")
    if fast_format(data) == "JPEG":
        head = read_jpeg_head(data)  # ~10 us where Pillow's open costs ~60-120 us
        if head is not None:
            _check_header("JPEG", head.width, head.height, complete=head.complete)
            return ImageHeader(
                format="JPEG",
                bytes=len(data),
                width=head.width,
                height=head.height,
                orientation=head.orientation,
                mode=head.mode,
            )
    with pillow_errors("image", "identification"):
        fmt = identify(data, accepted)
    with pillow_errors(fmt, "header read"):
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
    orientation, exif_error = _orientation(im)
    return ImageHeader(
        format=fmt,
        bytes=len(data),
        width=width,
        height=height,
        orientation=orientation,
        mode=im.mode,
        frames=_frames(im),
        exif_error=exif_error,
    )


def _frames(im: Image.Image) -> int:
    """Frames or pages; only the first is ever used, so a broken chain after it is 1."""
    try:
        return int(getattr(im, "n_frames", 1))
    except Exception:  # a broken frame/IFD chain after the first: the first still decodes
        return 1


@contextmanager
def pillow_errors(fmt: str, stage: str) -> Iterator[None]:
    """The boundary for Pillow's errors on untrusted bytes: each becomes a precise
    ItemError. ``stage`` says what was being done ("header read", "decode" ...)."""
    try:
        yield
    except ItemError:
        raise
    except Image.DecompressionBombError as exc:
        raise ItemError("DecompressionBomb", f"{fmt}: {exc}") from None
    except MemoryError:
        raise ItemError(
            "DecompressionBomb", f"{fmt} {stage} needs more memory than this process has"
        ) from None
    except OSError as exc:
        text = str(exc)
        if "not available" in text and ("decoder" in text or "encoder" in text):
            raise ItemError("UnsupportedFormat", f"{fmt}: this Pillow lacks {text}") from None
        raise ItemError("CorruptImage", f"{fmt} {stage} failed: {_describe(exc)}") from None
    except Exception as exc:  # any other failure on untrusted bytes: the data is bad
        raise ItemError("CorruptImage", f"{fmt} {stage} failed: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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


def open_image(data: bytes, fmt: str) -> ImageFile.ImageFile:
    """Parse the header only (transcode decodes from it). Not closed by us: the
    buffer holds no OS resource."""
    require_decoder(fmt)
    try:
        return Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError as exc:
        raise ItemError("DecompressionBomb", f"declared size is over Pillow's cap: {exc}") from None
    except Exception as exc:  # any parse failure of untrusted bytes is "corrupt"
        raise ItemError("CorruptImage", f"{fmt} header cannot be read: {_describe(exc)}") from None


def check_pixels(fmt: str, width: int, height: int) -> None:
    """Refuse a bomb by our own cap; ``MAX_PIXELS`` is read at each call."""
    if width * height > MAX_PIXELS:
        raise ItemError(
            "DecompressionBomb",
            f"{fmt} declares {width}x{height} px, over the {MAX_PIXELS:,} px cap",
        )


def _orientation(im: Image.Image) -> tuple[int, str | None]:
    """The EXIF orientation still to apply (1 where the decoder applies it itself),
    and why the EXIF block could not be read, if it could not: then 1, as a viewer
    that cannot read the tag shows the image."""
    if im.format == "TIFF" and _TIFF_SELF_ORIENTS:
        return 1, None
    # PNG's getexif() decodes the whole image to look for a late eXIf chunk; a header
    # read must not, so EXIF found in the header is parsed directly.
    raw = im.info.get("exif")
    try:
        if isinstance(raw, bytes):
            exif = Image.Exif()
            exif.load(raw)
        elif im.format == "PNG":
            return 1, None
        else:
            exif = im.getexif()
        value = exif.get(ORIENTATION_TAG, 1)
    except Exception as exc:  # malformed EXIF: "not a TIFF file", "unpack requires ..."
        return 1, _describe(exc)
    return (value if isinstance(value, int) and 1 <= value <= 8 else 1), None


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
