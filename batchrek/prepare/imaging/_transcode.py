"""Transcode the images the service would refuse: JPEG (or PNG for graphics), upright.

    ImageHeader (from inspect) ──▶ transcode(bytes, header, limits) ──▶ Transcoded

The displayed image is the truth, and the service's boxes must match what the user
sees. The service rotates a JPEG upright by its EXIF Orientation tag (and ignores the
tag in PNG; ../shared/REKOGNITION.md, "Orientation and bounding boxes"), so a JPEG
transcode keeps the pixels as stored and writes a one-tag EXIF block with the
orientation, while a PNG transcode applies the orientation to the pixels. Rotating
24 MP costs ~45 ms, a sixth of a whole transcode; the tag costs 40 bytes.

PNG is tried first for graphics: any image that is bilevel (mode "1": fax scans)
or paletted; sources in a lossless format (PNG, GIF, BMP) with under 65,536 colours
in the sample; and other formats but the lossy photo ones (JPEG, WebP, HEIF, AVIF)
with at most 256 colours in the sample. The PNG is written at the
smallest exact depth (1 bit for black and white, a palette for few colours), so a
224 KB bilevel TIFF stays a few hundred KB instead of growing tenfold as a JPEG; a
JPEG is made only when the PNG would not fit the cap.

The output fits the byte cap at the best quality, then the largest scale, that a few
sample encodes predict (``_Job``, ``_Sample``). Every Pillow error on the way is
translated by ``pillow_errors`` (CorruptImage ...). Pure and synchronous. Pillow work
must not run on the event loop: callers go through ``batchrek.prepare.pool.ImagePool``.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from PIL import Image

from batchrek.errors import ItemError
from batchrek.limits import ImageLimits
from batchrek.models import ImageStats
from batchrek.prepare.imaging._inspect import (
    ImageHeader,
    check_pixels,
    open_image,
    pillow_errors,
)
from batchrek.prepare.imaging._jpeghead import ORIENTATION_TAG

__all__ = ["QUALITIES", "TO_DISPLAY", "Transcoded", "transcode"]

# JPEG qualities tried, best first, before any resolution is given up. Resolution
# matters more to the service than the step from 80 to 75 (libjpeg's own default),
# and keeping it avoids a resample: on 24 MP, LANCZOS costs Pillow ~6x a JPEG encode.
QUALITIES: Final = (90, 85, 80, 75)

# Sources that are likely graphics (screenshots, diagrams): PNG is tried first.
_LOSSLESS: Final = frozenset({"PNG", "GIF", "BMP"})
# Modes that are graphics whatever the format: bilevel and paletted.
_GRAPHIC_MODES: Final = frozenset({"1", "P", "PA"})
# Lossy photo formats stay JPEG: their decoded pixels are already approximate, so a
# few-colour sample is a synthetic image, and the orientation can stay a tag.
_LOSSY: Final = frozenset({"JPEG", "WEBP", "HEIF", "AVIF"})
_FEW_COLOURS: Final = 256  # at most this many in the sample: a graphic, whatever the format
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


@dataclass(frozen=True, slots=True)
class Transcoded:
    """A transcode's output and what it was made from (both as displayed)."""

    data: bytes
    original: ImageStats
    sent: ImageStats


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
    with pillow_errors(header.format, "decode"):
        base, icc = _decode(data, header, job.stored_size(scale))
    with pillow_errors(header.format, "transcode"):
        made = job.run(base, icc, scale)
    return Transcoded(made.data, header.stats(), made.stats)


def _decode(
    data: bytes, header: ImageHeader, target: tuple[int, int]
) -> tuple[Image.Image, bytes | None]:
    """The first frame, in L, LA, RGB or RGBA, and its ICC profile."""
    im = open_image(data, header.format)
    check_pixels(header.format, *im.size)
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
    if mode.startswith("I;16"):  # Pillow's own convert clips at 255: scale instead
        return im.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    if mode in ("I", "F"):  # 32-bit or float data (FITS, SPIDER): stretch its range
        low, high = cast(tuple[float, float], im.getextrema())  # one band: (min, max)
        span = float(high) - float(low) or 1.0
        return im.convert("F").point(lambda v: (v - low) * (255 / span)).convert("L")
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
        if self._graphic(sample):
            made = self._try_png(base, icc, sample, scale)
            if made is not None:
                return made
        return self._jpeg(base, icc, quality, scale)

    def _graphic(self, sample: _Sample) -> bool:
        """Whether PNG may keep this image smaller than JPEG, and exact."""
        if self.header.mode in _GRAPHIC_MODES:
            return True
        if self.header.format in _LOSSLESS:
            return not sample.photo_like()
        return self.header.format not in _LOSSY and sample.few_colours()

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
        if sample.estimate(self, scale, "PNG") > self.cap * _AIM:
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
                return _Made(data, _stats("JPEG", data, img, self.header.orientation))
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

    def few_colours(self) -> bool:
        return self._at(self._base.width).getcolors(_FEW_COLOURS) is not None

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
    if fmt == "PNG":
        img = _smallest_exact(img)
    if orientation != 1:
        params["exif"] = _orientation_exif(orientation)
    # Keep the colour profile only when it still describes the pixels (not a CMYK
    # profile on converted RGB, say); the rest of the EXIF block is dropped.
    space = b"GRAY" if img.mode in ("1", "L", "LA") else b"RGB "
    if icc is not None and icc[16:20] == space:
        params["icc_profile"] = icc
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def _smallest_exact(img: Image.Image) -> Image.Image:
    """The same pixels in the smallest PNG mode: 1 bit when only black and white, a
    palette when 256 colours or fewer (both exact), else as it is."""
    if img.mode == "L":
        colours = img.getcolors(2)
        if colours is not None and {c for _, c in colours} <= {0, 255}:
            return img.convert("1", dither=Image.Dither.NONE)
        return img
    if img.mode != "RGB":
        return img
    found = img.getcolors(_FEW_COLOURS)
    if found is None:
        return img
    # Median cut with as many colours as there are gives each its own entry; checked,
    # because a PNG transcode promises the pixels exactly.
    paletted = img.quantize(len(found), method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    return paletted if paletted.convert("RGB").tobytes() == img.tobytes() else img


@functools.cache
def _orientation_exif(orientation: int) -> bytes:
    """An EXIF block holding only the Orientation tag."""
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    return exif.tobytes()


def _stats(fmt: str, data: bytes, img: Image.Image, orientation: int = 1) -> ImageStats:
    """Displayed size and the orientation tag written: a transposing tag (5-8) swaps
    the stored sides."""
    if orientation in (5, 6, 7, 8):
        return ImageStats(fmt, len(data), img.height, img.width, orientation)
    return ImageStats(fmt, len(data), img.width, img.height, orientation)
