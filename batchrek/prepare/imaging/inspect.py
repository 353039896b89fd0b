"""Inspect images cheaply, and transcode the ones the service would refuse.

    inspect(bytes) ──▶ ImageHeader ── fits()? ──yes──▶ send the original bytes, unchanged
                                          └──no───▶ transcode() ──▶ Transcoded (JPEG or PNG)

The displayed image is the truth, and the service's boxes must match what the user
sees. The service rotates a JPEG upright by its EXIF Orientation tag (and ignores the
tag in PNG; ../shared/REKOGNITION.md, "Orientation and bounding boxes"), so a JPEG
transcode keeps the pixels as stored and writes a one-tag EXIF block with the
orientation, while a PNG transcode applies the orientation to the pixels. Rotating
24 MP costs ~45 ms, a sixth of a whole transcode; the tag costs 40 bytes.

Pure and synchronous. Pillow work must not run on the event loop: callers go through
``batchrek.prepare.pool.ImagePool``.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from PIL import Image, ImageFile

from batchrek.errors import ItemError
from batchrek.limits import ImageLimits
from batchrek.models import ImageStats
from batchrek.prepare.imaging.jpeghead import ORIENTATION_TAG as _ORIENTATION_TAG
from batchrek.prepare.imaging.jpeghead import read_jpeg_head

__all__ = [
    "MAX_PIXELS",
    "QUALITIES",
    "TO_DISPLAY",
    "ImageHeader",
    "Transcoded",
    "fits",
    "inspect",
    "transcode",
]

# A truncated file must fail loudly, never decode to a half-grey image.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Twice the largest image the service takes (10,000 x 10,000): above this the header
# is lying or the image is not worth decoding. Pillow's own guard (2 x
# Image.MAX_IMAGE_PIXELS, ~179 MP by default) may trip first; it maps to the same code.
MAX_PIXELS: Final = 2 * 10_000 * 10_000

# JPEG qualities tried, best first, before any resolution is given up. Resolution
# matters more to the service than the step from 80 to 75 (libjpeg's own default),
# and keeping it avoids a resample: on 24 MP, LANCZOS costs Pillow ~6x a JPEG encode.
QUALITIES: Final = (90, 85, 80, 75)

_SERVICE_FORMATS: Final = frozenset({"JPEG", "PNG"})
# Modes every decoder reads; CMYK JPEG and 16-bit PNG are transcoded to be safe.
_SAFE_MODES: Final = {
    "JPEG": frozenset({"L", "RGB"}),
    "PNG": frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA"}),
}
# Sources that are likely graphics (screenshots, diagrams): PNG is tried first.
_LOSSLESS: Final = frozenset({"PNG", "GIF", "BMP"})
# Formats that need an optional decoder (pillow-heif, or a Pillow built with libavif).
_EXTRA_FORMATS: Final = frozenset({"HEIF", "AVIF"})

_AIM: Final = 0.96  # share of the cap an estimate may use; the rest absorbs its error
_SAMPLE_SHARE: Final = 0.08  # share of rows encoded to estimate the whole
_JPEG_OVERHEAD: Final = 620  # header + tables, not proportional to pixels
_BAND: Final = 32  # rows per sample band: two 4:2:0 JPEG block rows
_GRAPHIC_COLOURS: Final = 1 << 16  # more distinct colours in the sample: a photo
_MAX_ENCODES: Final = 6
_REDUCING_GAP: Final = 2.0  # reduce() by whole factors first, LANCZOS the rest

# Stored pixels -> displayed pixels, per EXIF orientation (as ImageOps.exif_transpose).
TO_DISPLAY: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


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
    exif[_ORIENTATION_TAG] = 6
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
        return ImageStats(self.format, self.bytes, self.displayed_width, self.displayed_height)


@dataclass(frozen=True, slots=True)
class Transcoded:
    """A transcode's output and what it was made from (both as displayed)."""

    data: bytes
    original: ImageStats
    sent: ImageStats


# --------------------------------------------------------------------------- inspect


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
    im = _open(data, fmt)
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
    _check_pixels(fmt, width, height)
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


def _open(data: bytes, fmt: str) -> ImageFile.ImageFile:
    """Parse the header only. Not closed by us: the buffer holds no OS resource."""
    _require_decoder(fmt)
    try:
        return Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError as exc:
        raise ItemError("DecompressionBomb", f"declared size is over Pillow's cap: {exc}") from exc
    except Exception as exc:  # any parse failure of untrusted bytes is "corrupt"
        raise ItemError("CorruptImage", f"{fmt} header cannot be read: {exc}") from exc


def _check_pixels(fmt: str, width: int, height: int) -> None:
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
    value = exif.get(_ORIENTATION_TAG, 1)
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


# ------------------------------------------------------------------------- transcode


def transcode(
    data: bytes,
    header: ImageHeader,
    limits: ImageLimits,
    *,
    cap: int | None = None,
    qualities: Sequence[int] = QUALITIES,
) -> Transcoded:
    """Make ``data`` fit ``limits`` as JPEG (or PNG for graphics), upright, keeping as
    much resolution as the byte cap allows. Never upscales.

    Sizes are predicted from encodes of a small sample of rows (JPEG and PNG sizes
    are local), so a typical transcode costs one decode, one resample at most and one
    full encode.
    """
    cap = limits.bytes_cap if cap is None else cap
    shown = (header.displayed_width, header.displayed_height)
    if min(shown) < limits.min_side:
        raise ItemError(
            "ImageTooSmall",
            f"{shown[0]}x{shown[1]} px is under the {limits.min_side} px minimum side",
        )
    scale = min(1.0, limits.max_side / max(shown))
    if min(shown) * scale < limits.min_side:
        raise ItemError(
            "ImageTooLarge",
            f"{shown[0]}x{shown[1]} px cannot fit {limits.max_side} px a side "
            f"and keep {limits.min_side} px on the other",
        )
    job = _Job(header, limits, cap, tuple(qualities))
    base, icc = _decode(data, header, job.stored_size(scale))
    made = job.run(base, icc, scale)
    return Transcoded(made.data, header.stats(), made.stats)


def _decode(
    data: bytes, header: ImageHeader, target: tuple[int, int]
) -> tuple[Image.Image, bytes | None]:
    """The first frame, in L, LA, RGB or RGBA, and its ICC profile."""
    im = _open(data, header.format)
    _check_pixels(header.format, *im.size)
    if header.format == "JPEG":
        im.draft(None, target)  # DCT-domain 1/2, 1/4, 1/8 when the target allows
    try:
        im.load()
    except Exception as exc:  # truncated or undecodable: never a half-grey image
        raise ItemError("CorruptImage", f"{header.format} data cannot be decoded: {exc}") from exc
    icc = im.info.get("icc_profile")
    return _normalize(im), icc if isinstance(icc, bytes) else None


def _normalize(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode in ("P", "PA"):
        return im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    if mode.startswith("I") or mode == "F":
        return im.convert("L")  # Pillow scales 16-bit to 8-bit
    if mode in ("La", "RGBa"):
        return im.convert(mode.upper())
    return im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX


@dataclass(frozen=True, slots=True)
class _Made:
    data: bytes
    stats: ImageStats


@dataclass(frozen=True, slots=True)
class _Job:
    header: ImageHeader
    limits: ImageLimits
    cap: int
    qualities: tuple[int, ...]

    def stored_size(self, scale: float) -> tuple[int, int]:
        side = self.limits.max_side
        w, h = self.header.width, self.header.height
        return (
            min(side, max(1, round(w * scale))),
            min(side, max(1, round(h * scale))),
        )

    def run(self, base: Image.Image, icc: bytes | None, scale: float) -> _Made:
        sample = _Sample(base)
        quality, scale = self._plan_jpeg(sample, scale)
        if self.header.format in _LOSSLESS:
            made = self._try_png(base, icc, sample, scale)
            if made is not None:
                return made
        return self._jpeg(base, icc, quality, scale)

    def _plan_jpeg(self, sample: _Sample, scale: float) -> tuple[int, float]:
        """Quality first (best to worst), then scale at the last quality: in few
        sample encodes, each scale step by the square root of the byte ratio."""
        budget = self.cap * _AIM
        w, h = self.stored_size(scale)
        if 3 * w * h + _JPEG_OVERHEAD <= budget:  # no JPEG is bigger than raw pixels
            return self.qualities[0], scale
        # Bytes fall as quality falls: bisect for the best quality under the budget,
        # two sample encodes for four qualities where a walk from the top takes four.
        lo, hi = 0, len(self.qualities)  # the answer's index is in [lo, hi]
        last = budget  # the estimate at the worst quality, once known
        while lo < hi:
            mid = (lo + hi) // 2
            estimate = sample.estimate(self, scale, "JPEG", self.qualities[mid])
            if mid == len(self.qualities) - 1:
                last = estimate
            if estimate <= budget:
                hi = mid
            else:
                lo = mid + 1
        if lo < len(self.qualities):
            return self.qualities[lo], scale
        return self.qualities[-1], self._search_scale(sample, scale, last, budget)

    def _search_scale(
        self, sample: _Sample, over: float, over_bytes: float, budget: float
    ) -> float:
        """The largest scale under ``budget`` at the last quality, bracketed in a few
        sample encodes. Bytes follow roughly scale**k; k is refitted from the bracket
        (a resample also smooths detail, so k is often above 2)."""
        quality = self.qualities[-1]
        k = 2.0
        under, under_bytes = 0.0, 0.0
        scale = self._shrink(over, budget / over_bytes)
        for _ in range(4):
            estimate = sample.estimate(self, scale, "JPEG", quality)
            if estimate <= budget:
                under, under_bytes = scale, estimate
            else:
                over, over_bytes = scale, estimate
            if under and (over / under < 1.01 or under_bytes > 0.98 * budget):
                break
            if under:
                k = max(1.0, math.log(over_bytes / under_bytes) / math.log(over / under))
                scale = under * (budget / under_bytes) ** (1 / k)
            else:
                scale = self._shrink(scale, (budget / estimate) ** (2 / k))
            scale = min(scale, over * 0.995)
        return under or scale

    def _try_png(
        self, base: Image.Image, icc: bytes | None, sample: _Sample, scale: float
    ) -> _Made | None:
        """PNG at the scale JPEG would need, for graphics that fit so: lossless and
        no resolution lost against the JPEG."""
        if sample.photo_like() or sample.estimate(self, scale, "PNG") > self.cap * _AIM:
            return None
        img = self._render(base, scale, "PNG")
        data = _encode(img, "PNG", 0, icc)
        return _Made(data, _stats("PNG", data, img)) if len(data) <= self.cap else None

    def _jpeg(self, base: Image.Image, icc: bytes | None, quality: int, scale: float) -> _Made:
        """Encode; if the estimate missed, step the quality down, then the scale."""
        img = self._render(base, scale, "JPEG")
        for _ in range(_MAX_ENCODES):
            data = _encode(img, "JPEG", quality, icc, self.header.orientation)
            if len(data) <= self.cap:
                return _Made(data, _stats("JPEG", data, img, self.header.transposed))
            lower = [q for q in self.qualities if q < quality]
            if lower:
                quality = lower[0]
            else:
                scale = self._shrink(scale, self.cap / len(data) * 0.98)
                img = self._render(base, scale, "JPEG")
        raise ItemError("ImageTooLarge", f"no JPEG under {self.cap:,} bytes was found")

    def _shrink(self, scale: float, byte_ratio: float) -> float:
        smaller = scale * math.sqrt(byte_ratio)
        shown = (self.header.displayed_width, self.header.displayed_height)
        if min(shown) * smaller < self.limits.min_side:
            raise ItemError(
                "ImageTooLarge",
                f"cannot fit {self.cap:,} bytes without going under "
                f"{self.limits.min_side} px a side",
            )
        return smaller

    def _render(self, base: Image.Image, scale: float, fmt: str) -> Image.Image:
        """Resize (stored orientation); flatten alpha for JPEG, which keeps the
        orientation as a tag; make PNG upright, as the service ignores its tag."""
        size = self.stored_size(scale)
        img = base if base.size == size else _resize(base, size)
        if fmt == "JPEG":
            return _flatten(img)
        if self.header.orientation in TO_DISPLAY:
            img = img.transpose(TO_DISPLAY[self.header.orientation])
        return img


class _Sample:
    """Bands of rows spread over the image, stacked: JPEG and PNG sizes are local, so
    encoding ~8% of the rows predicts the whole within a few percent.

    Each band is resized with a margin (its edges filtered as in the whole image) and
    cut to whole 16-row MCUs (no JPEG block straddles two bands).
    """

    def __init__(self, base: Image.Image) -> None:
        self._base = base
        self._stacks: dict[int, Image.Image] = {}

    def photo_like(self) -> bool:
        return self._at(self._base.width).getcolors(_GRAPHIC_COLOURS) is None

    def estimate(self, job: _Job, scale: float, fmt: str, quality: int = 0) -> float:
        w, h = job.stored_size(scale)
        img = self._at(w)
        if fmt == "JPEG":
            img = _flatten(img)
        size = len(_encode(img, fmt, quality, None))
        overhead = _JPEG_OVERHEAD if fmt == "JPEG" else 0
        return (size - overhead) * (w * h) / (img.width * img.height) + overhead

    def _at(self, width: int) -> Image.Image:
        """The bands as they would be in the image resized to ``width``, stacked."""
        if width not in self._stacks:
            self._stacks[width] = self._stack(width, min(1.0, width / self._base.width))
        return self._stacks[width]

    def _stack(self, width: int, factor: float) -> Image.Image:
        base = self._base
        height = max(1, round(base.height * factor))
        count = min(32, max(8, round(height * _SAMPLE_SHARE / _BAND)))
        if 2 * count * _BAND >= height:
            return base if factor == 1 else _resize(base, (width, height))
        margin = 0 if factor == 1 else math.ceil(4 / factor)
        step = height / count
        stack = Image.new(base.mode, (width, count * _BAND))
        for i in range(count):
            top = (i * step + (step - _BAND) / 2) / factor  # in base rows
            upper = max(0, int(top) - margin)
            lower = min(base.height, math.ceil(top + _BAND / factor) + margin)
            piece = base.crop((0, upper, base.width, lower))
            if factor < 1:
                piece = _resize(piece, (width, max(1, round(piece.height * factor))))
            skip = min(round((top - upper) * factor), max(0, piece.height - _BAND))
            stack.paste(piece.crop((0, skip, width, skip + _BAND)), (0, i * _BAND))
        return stack


def _resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=_REDUCING_GAP)


def _flatten(img: Image.Image) -> Image.Image:
    """Alpha onto white, as most viewers show a transparent JPEG-bound image."""
    if img.mode not in ("LA", "RGBA"):
        return img
    opaque = img.mode[:-1]
    background = Image.new(opaque, img.size, 255 if opaque == "L" else (255, 255, 255))
    background.paste(img.convert(opaque), mask=img.getchannel("A"))
    return background


def _encode(
    img: Image.Image, fmt: str, quality: int, icc: bytes | None, orientation: int = 1
) -> bytes:
    params: dict[str, Any] = {"quality": quality} if fmt == "JPEG" else {}
    if orientation != 1:
        params["exif"] = _orientation_exif(orientation)
    # Keep the colour profile only when it still describes the pixels (not a CMYK
    # profile on converted RGB, say); the rest of the EXIF block is dropped.
    space = b"GRAY" if img.mode in ("L", "LA") else b"RGB "
    if icc is not None and icc[16:20] == space:
        params["icc_profile"] = icc
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


@functools.cache
def _orientation_exif(orientation: int) -> bytes:
    """An EXIF block holding only the Orientation tag."""
    exif = Image.Exif()
    exif[_ORIENTATION_TAG] = orientation
    return exif.tobytes()


def _stats(fmt: str, data: bytes, img: Image.Image, transposed: bool = False) -> ImageStats:
    """Displayed size: a ``transposed`` orientation tag (5-8) swaps the stored sides."""
    if transposed:
        return ImageStats(fmt, len(data), img.height, img.width)
    return ImageStats(fmt, len(data), img.width, img.height)
