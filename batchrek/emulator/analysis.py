"""Turn pixels into the few facts every synthetic answer is built from.

The image is decoded at a reduced size (JPEG draft mode picks a 1/2..1/8 DCT scale,
then a thumbnail), rotated upright by its EXIF orientation when it is a JPEG, as the
service does, and measured: displayed size, the box of strongly red pixels,
brightness, contrast, sharpness and a few dominant colours. Results are cached by
content hash, so an image already seen costs one dictionary lookup.
"""

from __future__ import annotations

import io
import warnings
from collections import OrderedDict
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageFilter, ImageOps, ImageStat

from batchrek.emulator.apierrors import ServiceError, invalid_format
from batchrek.emulator.validation import Header

__all__ = ["ANALYSIS_SIDE", "Analysis", "AnalysisCache", "Box", "Color", "analyse"]

ANALYSIS_SIDE = 512  # box precision ~1/512 of the displayed side
_RED_MIN, _OTHER_MAX = 150, 100
_RED_LUT = [255 if v >= _RED_MIN else 0 for v in range(256)]
_LOW_LUT = [255 if v <= _OTHER_MAX else 0 for v in range(256)]


@dataclass(frozen=True, slots=True)
class Box:
    """A BoundingBox as ratios of the displayed image, as the API reports it."""

    left: float
    top: float
    width: float
    height: float

    def as_api(self) -> dict[str, float]:
        return {"Width": self.width, "Height": self.height, "Left": self.left, "Top": self.top}

    def polygon(self) -> list[dict[str, float]]:
        right, bottom = self.left + self.width, self.top + self.height
        corners = ((self.left, self.top), (right, self.top), (right, bottom), (self.left, bottom))
        return [{"X": x, "Y": y} for x, y in corners]

    def iou(self, other: Box) -> float:
        """Intersection over union: how alike two boxes are (face 'similarity')."""
        w = min(self.left + self.width, other.left + other.width) - max(self.left, other.left)
        h = min(self.top + self.height, other.top + other.height) - max(self.top, other.top)
        inter = max(0.0, w) * max(0.0, h)
        union = self.width * self.height + other.width * other.height - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Color:
    red: int
    green: int
    blue: int
    percent: float


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything the synthetic answers need, for the displayed (upright) image."""

    width: int
    height: int
    box: Box | None
    red_fraction: float
    brightness: float
    contrast: float
    sharpness: float
    colors: tuple[Color, ...]


def analyse(data: bytes, header: Header) -> Analysis:
    """Decode a reduced copy of ``data`` and measure it; InvalidImageFormat if undecodable."""
    try:
        with warnings.catch_warnings():
            # Header sizes are already checked against the op's limits (<= 100 MP).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            small, width, height = _upright_thumbnail(data, header)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise invalid_format() from exc
    return _measure(small, width, height)


def _upright_thumbnail(data: bytes, header: Header) -> tuple[Image.Image, int, int]:
    img: Image.Image = Image.open(io.BytesIO(data))
    width, height = img.size
    if header.format == "JPEG":
        img.draft("RGB", (ANALYSIS_SIDE, ANALYSIS_SIDE))
        img.load()
        # The service shows boxes relative to the upright image; PNG is never rotated.
        orientation = img.getexif().get(0x0112, 1)
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        img = ImageOps.exif_transpose(img)
    else:
        img.load()
    img = _to_rgb(img)
    img.thumbnail((ANALYSIS_SIDE, ANALYSIS_SIDE), Image.Resampling.BILINEAR)
    return img, width, height


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode.startswith("I"):  # 16/32-bit greyscale: scale to 8 bits, don't clip
        img = img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        base = Image.new("RGB", img.size, (255, 255, 255))
        base.paste(img, mask=img.getchannel("A"))
        return base
    return img.convert("RGB")


def _measure(small: Image.Image, width: int, height: int) -> Analysis:
    r, g, b = small.split()
    mask = ImageChops.darker(
        r.point(_RED_LUT), ImageChops.darker(g.point(_LOW_LUT), b.point(_LOW_LUT))
    )
    bbox = mask.getbbox()
    sw, sh = small.size
    box = None
    if bbox is not None:
        left, top, right, bottom = bbox
        box = Box(_r(left / sw), _r(top / sh), _r((right - left) / sw), _r((bottom - top) / sh))
    grey = small.convert("L")
    stat = ImageStat.Stat(grey)
    edges = ImageStat.Stat(grey.filter(ImageFilter.FIND_EDGES))
    return Analysis(
        width=width,
        height=height,
        box=box,
        red_fraction=_r(mask.histogram()[255] / (sw * sh)),
        brightness=_r(stat.mean[0] / 255 * 100),
        contrast=_r(min(100.0, stat.stddev[0] / 128 * 100)),
        sharpness=_r(min(100.0, edges.mean[0] / 32 * 100)),
        colors=_dominant(small),
    )


def _dominant(small: Image.Image, count: int = 3) -> tuple[Color, ...]:
    tiny = small.resize((64, 64), Image.Resampling.NEAREST)
    quant = tiny.quantize(colors=count + 1, method=Image.Quantize.MEDIANCUT)
    palette = quant.getpalette() or []
    # A "P" image's colours are (count, palette index) pairs.
    counts = [(n, i) for n, i in quant.getcolors() or [] if isinstance(i, int)]
    counts.sort(key=lambda c: (-c[0], c[1]))
    total = 64 * 64
    return tuple(
        Color(palette[3 * i], palette[3 * i + 1], palette[3 * i + 2], _r(n / total * 100))
        for n, i in counts[:count]
    )


def _r(value: float) -> float:
    return round(value, 4)


class AnalysisCache:
    """A bounded LRU of analyses (or the decode error) by content key."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self._max = max_entries
        self._entries: OrderedDict[str, Analysis | ServiceError] = OrderedDict()

    def get(self, key: str) -> Analysis | ServiceError | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: str, value: Analysis | ServiceError) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"AnalysisCache(entries={len(self._entries)}, max={self._max})"
