"""The service's rules, in one place (see REKOGNITION.md in the project's shared docs).

The emulator enforces these, and the client routes and transcodes by them, so the
two can never disagree about what the service accepts.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BYTES_CAP",
    "BYTES_CAP_SMALL",
    "DEFAULT_TPS",
    "OPERATIONS",
    "S3_OBJECT_CAP",
    "ImageLimits",
    "default_tps",
    "limits_for",
]

BYTES_CAP = 5 * 1024 * 1024  # 5,242,880 bytes, before base64
BYTES_CAP_SMALL = 4_000_000  # DetectCustomLabels, DetectProtectiveEquipment
S3_OBJECT_CAP = 15 * 1024 * 1024  # "15 MB"; treated as MiB, like the bytes cap
MIN_SIDE = 80
MIN_SIDE_PPE = 64
MAX_SIDE = 10_000
MAX_SIDE_PPE = 4_096

# The boto3 method name -> the API operation name.
OPERATIONS: dict[str, str] = {
    "detect_labels": "DetectLabels",
    "detect_faces": "DetectFaces",
    "detect_moderation_labels": "DetectModerationLabels",
    "detect_text": "DetectText",
    "recognize_celebrities": "RecognizeCelebrities",
    "detect_protective_equipment": "DetectProtectiveEquipment",
    "detect_custom_labels": "DetectCustomLabels",
    "index_faces": "IndexFaces",
    "search_faces_by_image": "SearchFacesByImage",
    "compare_faces": "CompareFaces",
}

_BIG_REGIONS = frozenset({"us-east-1", "us-west-2", "eu-west-1"})

# Default TPS quota per operation: (in the three big regions, elsewhere).
DEFAULT_TPS: dict[str, tuple[float, float]] = {
    "DetectLabels": (50, 5),
    "DetectModerationLabels": (50, 5),
    "DetectText": (50, 5),
    "RecognizeCelebrities": (50, 5),
    "IndexFaces": (50, 5),
    "SearchFacesByImage": (50, 5),
    "DetectFaces": (100, 25),
    "CompareFaces": (100, 25),
    "DetectProtectiveEquipment": (5, 5),
    "DetectCustomLabels": (5, 5),  # per model/inference unit; no published default
}


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """What one operation accepts as an image."""

    bytes_cap: int
    min_side: int
    max_side: int
    s3_object_cap: int = S3_OBJECT_CAP


_DEFAULT_LIMITS = ImageLimits(bytes_cap=BYTES_CAP, min_side=MIN_SIDE, max_side=MAX_SIDE)
_LIMITS: dict[str, ImageLimits] = {
    "DetectProtectiveEquipment": ImageLimits(
        bytes_cap=BYTES_CAP_SMALL, min_side=MIN_SIDE_PPE, max_side=MAX_SIDE_PPE
    ),
    "DetectCustomLabels": ImageLimits(
        bytes_cap=BYTES_CAP_SMALL, min_side=MIN_SIDE, max_side=MAX_SIDE
    ),
}


def _api_name(operation: str) -> str:
    return OPERATIONS.get(operation, operation)


def limits_for(operation: str) -> ImageLimits:
    """Limits for an operation given as boto3 method name or API name."""
    return _LIMITS.get(_api_name(operation), _DEFAULT_LIMITS)


def default_tps(operation: str, region: str) -> float:
    big, small = DEFAULT_TPS.get(_api_name(operation), (5, 5))
    return big if region in _BIG_REGIONS else small
