"""Turn pixels into the few facts every synthetic answer is built from.

The image is decoded at a reduced size (JPEG draft mode picks a 1/2..1/8 DCT scale,
then a thumbnail), rotated upright by its EXIF orientation when it is a JPEG, as the
service does, and measured: displayed size, the box of strongly red pixels,
brightness, contrast, sharpness and a few dominant colours. Results are cached by
content hash, so an image already seen costs one dictionary lookup.
"""

from __future__ import annotations

import io
import math
import warnings
from collections import OrderedDict
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageOps

from batchrek.emulator.apierrors import ServiceError, invalid_format
from batchrek.emulator.validation import Header

__all__ = ["ANALYSIS_SIDE", "Analysis", "AnalysisCache", "Box", "Color", "analyse"]

ANALYSIS_SIDE = 256  # box precision ~1/256 of the displayed side
_SHORT_SIDE = 128  # ...and at least 1/128 of the short side of a panorama
_RED_MIN, _OTHER_MAX = 150, 100
_TINY = 24  # side of the copy the image properties come from


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
class _Properties:
    brightness: float
    contrast: float
    sharpness: float
    colors: tuple[Color, ...]


class Analysis:
    """Everything the synthetic answers need, for the displayed (upright) image.

    Size, box and red share are measured at once (every answer uses them); the image
    properties (brightness, contrast, sharpness, dominant colours) only on first use,
    from a 24 x 24 copy kept for it: DetectLabels without IMAGE_PROPERTIES never asks,
    and the emulator's CPU per distinct image is what bounds the throughput benchmarks.
    """

    __slots__ = ("_properties", "_tiny", "box", "height", "red_fraction", "width")

    def __init__(
        self, width: int, height: int, box: Box | None, red_fraction: float, tiny: Image.Image
    ) -> None:
        self.width = width
        self.height = height
        self.box = box
        self.red_fraction = red_fraction
        self._tiny = tiny.tobytes()  # ~1.7 kB; the cache holds at most 50,000
        self._properties: _Properties | None = None

    @property
    def brightness(self) -> float:
        return self._props().brightness

    @property
    def contrast(self) -> float:
        return self._props().contrast

    @property
    def sharpness(self) -> float:
        return self._props().sharpness

    @property
    def colors(self) -> tuple[Color, ...]:
        return self._props().colors

    def _props(self) -> _Properties:
        if self._properties is None:
            self._properties = _properties(Image.frombytes("RGB", (_TINY, _TINY), self._tiny))
        return self._properties

    def __repr__(self) -> str:
        return (
            f"Analysis(width={self.width}, height={self.height}, box={self.box}, "
            f"red_fraction={self.red_fraction})"
        )


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
    img: Image.Image = Image.open(io.BytesIO(data), formats=[header.format])
    width, height = img.size
    fit = min(1.0, max(ANALYSIS_SIDE / max(width, height), _SHORT_SIDE / min(width, height)))
    size = (max(1, round(width * fit)), max(1, round(height * fit)))  # as stored
    if header.format == "JPEG":
        img.draft("RGB", size)  # DCT scaling, keeping both sides >= size
        img.load()
        # The service shows boxes relative to the upright image; PNG is never rotated.
        orientation = img.getexif().get(0x0112, 1)
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        if orientation != 1:
            img = ImageOps.exif_transpose(img)
    else:
        img.load()
    img = _to_rgb(img)
    # ``size`` is as stored; a transposed image needs its sides swapped.
    landscape = (img.width >= img.height) == (size[0] >= size[1])
    img.thumbnail(size if landscape else size[::-1], Image.Resampling.BILINEAR)
    return img, width, height


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode.startswith("I"):  # 16/32-bit greyscale: scale to 8 bits, don't clip
        img = img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        base = Image.new("RGB", img.size, (255, 255, 255))
        base.paste(img, mask=img.getchannel("A"))
        return base
    return img if img.mode == "RGB" else img.convert("RGB")


def _measure(small: Image.Image, width: int, height: int) -> Analysis:
    """Box and red share of the thumbnail, each step one C call on the whole of it."""
    r, g, b = small.split()
    sw, sh = small.size
    mask = ImageChops.darker(
        _at_least(r, _RED_MIN), ImageChops.darker(_at_most(g, _OTHER_MAX), _at_most(b, _OTHER_MAX))
    )
    bbox = mask.getbbox()
    box = None
    if bbox is not None:
        left, top, right, bottom = bbox
        box = Box(_r(left / sw), _r(top / sh), _r((right - left) / sw), _r((bottom - top) / sh))
    tiny = small.resize((_TINY, _TINY), Image.Resampling.BOX)
    return Analysis(width, height, box, _r(mask.histogram()[255] / (sw * sh)), tiny)


def _properties(tiny: Image.Image) -> _Properties:
    """Brightness, contrast, sharpness and dominant colours of the 24 x 24 copy.

    ``Image.point`` (a Python pass over its table) and ``ImageStat`` (four Python
    passes over the histogram) were replaced by clipped arithmetic and one pass.
    """
    grey = tiny.convert("L")
    mean, stddev = _mean_stddev(grey)
    # Mean difference from the neighbour one pixel down and right: a gradient.
    gradient, _ = _mean_stddev(ImageChops.difference(grey, ImageChops.offset(grey, 1, 1)))
    return _Properties(
        brightness=_r(mean / 255 * 100),
        contrast=_r(min(100.0, stddev / 128 * 100)),
        sharpness=_r(min(100.0, gradient / 32 * 100)),
        colors=_dominant(tiny),
    )


def _at_least(band: Image.Image, low: int) -> Image.Image:
    """255 where ``band >= low``, else 0: (band - (low - 1)) * 255, clipped."""
    return ImageChops.subtract(band, Image.new("L", band.size, low - 1), scale=1 / 255)


def _at_most(band: Image.Image, high: int) -> Image.Image:
    """255 where ``band <= high``, else 0: ((high + 1) - band) * 255, clipped."""
    return ImageChops.subtract(Image.new("L", band.size, high + 1), band, scale=1 / 255)


def _mean_stddev(grey: Image.Image) -> tuple[float, float]:
    hist = grey.histogram()
    count = sum(hist) or 1
    total = squares = 0
    for value, n in enumerate(hist):
        if n:
            total += value * n
            squares += value * value * n
    mean = total / count
    return mean, math.sqrt(max(0.0, squares / count - mean * mean))


def _dominant(tiny: Image.Image, count: int = 3) -> tuple[Color, ...]:
    quant = tiny.quantize(colors=count + 1, method=Image.Quantize.MEDIANCUT)
    palette = quant.getpalette() or []
    # A "P" image's colours are (count, palette index) pairs.
    counts = [(n, i) for n, i in quant.getcolors() or [] if isinstance(i, int)]
    counts.sort(key=lambda c: (-c[0], c[1]))
    total = _TINY * _TINY
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
