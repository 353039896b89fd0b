"""The building blocks of every synthetic response, from an ``Analysis`` alone.

Meaning (see the package docstring): the red region is "the" face, person, text
line, label instance and custom label; the canvas size is spelled ``<W>x<H>`` in a
DetectLabels alias and a DetectText line. Keys are exactly those of botocore's
output shapes (a test walks the service model to keep it so).

The per-image fragments are memoised on the (hashable, frozen) ``Analysis``: an image
seen before costs no rebuilding. Callers must treat what they get as read-only.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from batchrek.emulator.analysis import Analysis, Box, Color

__all__ = [
    "FACE_ATTRIBUTES",
    "compared_face",
    "dominant_colors",
    "face_confidence",
    "face_detail",
    "image_properties",
    "labels",
    "size_text",
    "text_detections",
]

# Attribute names DetectFaces accepts besides DEFAULT and ALL, and the key each adds.
FACE_ATTRIBUTES: dict[str, str] = {
    "AGE_RANGE": "AgeRange",
    "BEARD": "Beard",
    "EMOTIONS": "Emotions",
    "EYE_DIRECTION": "EyeDirection",
    "EYEGLASSES": "Eyeglasses",
    "EYES_OPEN": "EyesOpen",
    "FACE_OCCLUDED": "FaceOccluded",
    "GENDER": "Gender",
    "MOUTH_OPEN": "MouthOpen",
    "MUSTACHE": "Mustache",
    "SMILE": "Smile",
    "SUNGLASSES": "Sunglasses",
}

_PALETTE: tuple[tuple[str, str, tuple[int, int, int]], ...] = (
    ("black", "black", (0, 0, 0)),
    ("dimgray", "grey", (105, 105, 105)),
    ("gray", "grey", (128, 128, 128)),
    ("darkgray", "grey", (169, 169, 169)),
    ("silver", "grey", (192, 192, 192)),
    ("white", "white", (255, 255, 255)),
    ("red", "red", (255, 0, 0)),
    ("crimson", "red", (220, 20, 60)),
    ("darkred", "red", (139, 0, 0)),
    ("green", "green", (0, 128, 0)),
    ("blue", "blue", (0, 0, 255)),
    ("yellow", "yellow", (255, 255, 0)),
    ("orange", "orange", (255, 165, 0)),
    ("purple", "purple", (128, 0, 128)),
    ("pink", "pink", (255, 192, 203)),
    ("brown", "brown", (165, 42, 42)),
)


def size_text(a: Analysis) -> str:
    return f"{a.width}x{a.height}"


def face_confidence(a: Analysis) -> float:
    """Bigger red region, surer face: deterministic, in 90..99.99."""
    return round(min(99.99, 90.0 + a.red_fraction * 50.0), 4)


def _landmarks(box: Box) -> list[dict[str, Any]]:
    points = {
        "eyeLeft": (0.3, 0.35),
        "eyeRight": (0.7, 0.35),
        "nose": (0.5, 0.55),
        "mouthLeft": (0.35, 0.75),
        "mouthRight": (0.65, 0.75),
    }
    return [
        {
            "Type": name,
            "X": round(box.left + fx * box.width, 4),
            "Y": round(box.top + fy * box.height, 4),
        }
        for name, (fx, fy) in points.items()
    ]


def _quality(a: Analysis) -> dict[str, float]:
    return {"Brightness": a.brightness, "Sharpness": a.sharpness}


def _pose() -> dict[str, float]:
    return {"Roll": 0.0, "Yaw": 0.0, "Pitch": 0.0}


def _extras(a: Analysis) -> dict[str, Any]:
    """The ALL attributes, each a fixed function of the image."""
    sure = 99.0
    return {
        "AgeRange": {"Low": 25, "High": 35},
        "Smile": {"Value": a.brightness > 50, "Confidence": sure},
        "Eyeglasses": {"Value": False, "Confidence": sure},
        "Sunglasses": {"Value": False, "Confidence": sure},
        "Gender": {"Value": "Female" if a.red_fraction > 0.1 else "Male", "Confidence": 90.0},
        "Beard": {"Value": False, "Confidence": sure},
        "Mustache": {"Value": False, "Confidence": sure},
        "EyesOpen": {"Value": True, "Confidence": sure},
        "MouthOpen": {"Value": False, "Confidence": sure},
        "Emotions": [{"Type": "CALM", "Confidence": 95.0}, {"Type": "HAPPY", "Confidence": 3.0}],
        "FaceOccluded": {"Value": False, "Confidence": sure},
        "EyeDirection": {"Yaw": 0.0, "Pitch": 0.0, "Confidence": sure},
    }


def face_detail(a: Analysis, box: Box, attributes: frozenset[str]) -> dict[str, Any]:
    """A FaceDetail with the DEFAULT keys plus what ``attributes`` asks for."""
    detail: dict[str, Any] = {
        "BoundingBox": box.as_api(),
        "Landmarks": _landmarks(box),
        "Pose": _pose(),
        "Quality": _quality(a),
        "Confidence": face_confidence(a),
    }
    if attributes - {"DEFAULT"}:
        extras = _extras(a)
        wanted = (
            set(extras)
            if "ALL" in attributes
            else {FACE_ATTRIBUTES[x] for x in attributes if x in FACE_ATTRIBUTES}
        )
        detail.update((k, v) for k, v in extras.items() if k in wanted)
    return detail


def compared_face(a: Analysis, box: Box) -> dict[str, Any]:
    return {
        "BoundingBox": box.as_api(),
        "Confidence": face_confidence(a),
        "Landmarks": _landmarks(box),
        "Pose": _pose(),
        "Quality": _quality(a),
    }


def _nearest(color: Color) -> tuple[str, str]:
    def distance(entry: tuple[str, str, tuple[int, int, int]]) -> int:
        r, g, b = entry[2]
        return (r - color.red) ** 2 + (g - color.green) ** 2 + (b - color.blue) ** 2

    css, simple, _ = min(_PALETTE, key=distance)
    return css, simple


@lru_cache(maxsize=1024)
def _api_color(color: Color) -> dict[str, Any]:
    css, simple = _nearest(color)
    return {
        "Red": color.red,
        "Blue": color.blue,
        "Green": color.green,
        "HexCode": f"#{color.red:02x}{color.green:02x}{color.blue:02x}",
        "CSSColor": css,
        "SimplifiedColor": simple,
        "PixelPercent": color.percent,
    }


@lru_cache(maxsize=4096)
def dominant_colors(a: Analysis) -> list[dict[str, Any]]:
    return [_api_color(c) for c in a.colors]


@lru_cache(maxsize=4096)
def image_properties(a: Analysis) -> dict[str, Any]:
    quality = {"Brightness": a.brightness, "Sharpness": a.sharpness, "Contrast": a.contrast}
    props: dict[str, Any] = {
        "Quality": quality,
        "DominantColors": dominant_colors(a),
        "Background": {"Quality": quality, "DominantColors": dominant_colors(a)},
    }
    if a.box is not None:
        red = Color(230, 20, 20, round(a.red_fraction * 100, 4))
        props["Foreground"] = {"Quality": quality, "DominantColors": [_api_color(red)]}
    return props


@lru_cache(maxsize=4096)
def labels(a: Analysis) -> list[dict[str, Any]]:
    """Every label before MinConfidence/MaxLabels: the canvas, then the red region."""
    found: list[dict[str, Any]] = [
        {
            "Name": "Canvas",
            "Confidence": 99.99,
            "Instances": [],
            "Parents": [],
            "Aliases": [{"Name": size_text(a)}],
            "Categories": [{"Name": "Emulator"}],
        }
    ]
    if a.box is not None:
        confidence = face_confidence(a)
        found.append(
            {
                "Name": "Red Region",
                "Confidence": confidence,
                "Instances": [
                    {
                        "BoundingBox": a.box.as_api(),
                        "Confidence": confidence,
                        "DominantColors": [_api_color(Color(230, 20, 20, 100.0))],
                    }
                ],
                "Parents": [{"Name": "Shape"}],
                "Aliases": [],
                "Categories": [{"Name": "Colors and Visual Composition"}],
            }
        )
        found.append(
            {
                "Name": "Shape",
                "Confidence": confidence,
                "Instances": [],
                "Parents": [],
                "Aliases": [],
                "Categories": [{"Name": "Colors and Visual Composition"}],
            }
        )
    return found


def _detection(text: str, kind: str, ident: int, parent: int | None, box: Box) -> dict[str, Any]:
    found: dict[str, Any] = {
        "DetectedText": text,
        "Type": kind,
        "Id": ident,
        "Confidence": 99.5,
        "Geometry": {"BoundingBox": box.as_api(), "Polygon": box.polygon()},
    }
    if parent is not None:
        found["ParentId"] = parent
    return found


@lru_cache(maxsize=4096)
def text_detections(a: Analysis) -> list[dict[str, Any]]:
    """LINEs then WORDs, as the service orders them: the size, then "RED" on the box."""
    lines: list[tuple[str, Box]] = [(size_text(a), Box(0.02, 0.02, 0.2, 0.05))]
    if a.box is not None:
        lines.append(("RED", a.box))
    out = [_detection(text, "LINE", i, None, box) for i, (text, box) in enumerate(lines)]
    out += [_detection(text, "WORD", len(lines) + i, i, box) for i, (text, box) in enumerate(lines)]
    return out
