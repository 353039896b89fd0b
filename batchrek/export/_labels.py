"""One flat row per thing found: a label, a line of text, a face, a celebrity...

The responses of the image operations differ in shape; this is the one place that
knows them, so the labels table is queryable the same way for all of them:
``(id, operation, kind, name, confidence, left, top, width, height, detail)``, boxes
as the service gives them (ratios of the displayed image, top-left origin).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = ["LABEL_COLUMNS", "LabelRow", "label_rows"]

LABEL_COLUMNS = (
    "id",
    "operation",
    "kind",
    "name",
    "confidence",
    "left",
    "top",
    "width",
    "height",
    "detail",
)
# (kind, name, confidence, left, top, width, height, detail); id and operation prepended.
_Found = tuple[
    str,
    str | None,
    float | None,
    float | None,
    float | None,
    float | None,
    float | None,
    str | None,
]
LabelRow = tuple[Any, ...]


def _box(box: Any) -> tuple[float | None, float | None, float | None, float | None]:
    if not isinstance(box, Mapping):
        return None, None, None, None
    return box.get("Left"), box.get("Top"), box.get("Width"), box.get("Height")


def _geometry_box(item: Mapping[str, Any]) -> Any:
    geometry = item.get("Geometry")
    return geometry.get("BoundingBox") if isinstance(geometry, Mapping) else None


def _labels(r: Mapping[str, Any]) -> Iterator[_Found]:
    for label in r.get("Labels", ()):
        instances = label.get("Instances") or ()
        parents = ",".join(p.get("Name", "") for p in label.get("Parents") or ()) or None
        if not instances:
            yield ("label", label.get("Name"), label.get("Confidence"), *_box(None), parents)
        for inst in instances:
            conf = inst.get("Confidence", label.get("Confidence"))
            yield ("label", label.get("Name"), conf, *_box(inst.get("BoundingBox")), parents)


def _moderation(r: Mapping[str, Any]) -> Iterator[_Found]:
    for label in r.get("ModerationLabels", ()):
        parent = label.get("ParentName") or None
        yield ("moderation", label.get("Name"), label.get("Confidence"), *_box(None), parent)


def _text(r: Mapping[str, Any]) -> Iterator[_Found]:
    for text in r.get("TextDetections", ()):
        box = _box(_geometry_box(text))
        yield ("text", text.get("DetectedText"), text.get("Confidence"), *box, text.get("Type"))


def _faces(r: Mapping[str, Any]) -> Iterator[_Found]:
    for face in r.get("FaceDetails", ()):
        yield ("face", None, face.get("Confidence"), *_box(face.get("BoundingBox")), None)


def _celebrities(r: Mapping[str, Any]) -> Iterator[_Found]:
    for celeb in r.get("CelebrityFaces", ()):
        face = celeb.get("Face") or {}
        box = _box(face.get("BoundingBox"))
        yield ("celebrity", celeb.get("Name"), celeb.get("MatchConfidence"), *box, celeb.get("Id"))


def _custom(r: Mapping[str, Any]) -> Iterator[_Found]:
    for label in r.get("CustomLabels", ()):
        box = _box(_geometry_box(label))
        yield ("label", label.get("Name"), label.get("Confidence"), *box, None)


def _indexed(r: Mapping[str, Any]) -> Iterator[_Found]:
    for record in r.get("FaceRecords", ()):
        face = record.get("Face") or {}
        box = _box(face.get("BoundingBox"))
        yield ("face", face.get("FaceId"), face.get("Confidence"), *box, "indexed")


def _matches(r: Mapping[str, Any]) -> Iterator[_Found]:
    for match in r.get("FaceMatches", ()):
        face = match.get("Face") or {}
        box = _box(face.get("BoundingBox"))
        name = face.get("ExternalImageId") or face.get("FaceId")
        yield ("face_match", name, match.get("Similarity"), *box, face.get("FaceId"))


def _ppe(r: Mapping[str, Any]) -> Iterator[_Found]:
    for person in r.get("Persons", ()):
        for part in person.get("BodyParts") or ():
            for item in part.get("EquipmentDetections") or ():
                box = _box(item.get("BoundingBox"))
                yield ("ppe", item.get("Type"), item.get("Confidence"), *box, part.get("Name"))


_BY_OPERATION: dict[str, Callable[[Mapping[str, Any]], Iterator[_Found]]] = {
    "detect_labels": _labels,
    "detect_moderation_labels": _moderation,
    "detect_text": _text,
    "detect_faces": _faces,
    "recognize_celebrities": _celebrities,
    "detect_custom_labels": _custom,
    "index_faces": _indexed,
    "search_faces_by_image": _matches,
    "detect_protective_equipment": _ppe,
}


def label_rows(item_id: str, operation: str, response: Any) -> Iterator[LabelRow]:
    """The rows of one response; nothing for an error or an unknown operation."""
    extract = _BY_OPERATION.get(operation)
    if extract is None or not isinstance(response, Mapping):
        return
    for found in extract(response):
        yield (item_id, operation, *found)
