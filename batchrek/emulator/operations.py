"""One handler per Rekognition operation: check parameters, resolve images, answer.

A handler returns the response and the pictures it analysed; the service records
those as billable analyses only when the call succeeds.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from batchrek.emulator import answers
from batchrek.emulator.apierrors import invalid_parameter
from batchrek.emulator.facestore import FaceStore
from batchrek.emulator.images import ImageResolver, Picture
from batchrek.emulator.projects import ModelStore, describe_project_versions, describe_projects
from batchrek.emulator.validation import optional_number, require_string
from batchrek.limits import limits_for

__all__ = ["HANDLERS", "Context", "Outcome"]

_COLLECTION_ID = re.compile(r"[a-zA-Z0-9_.\-]{1,255}")
_EXTERNAL_ID = re.compile(r"[a-zA-Z0-9_.\-:]{1,255}")
_PROJECT_VERSION_ARN = re.compile(
    r"arn:[a-z\d-]+:rekognition:[a-z\d-]+:\d{12}:project/[a-zA-Z0-9_.\-]{1,255}"
    r"/version/[a-zA-Z0-9_.\-]{1,255}/[0-9]+"
)
_NO_FACE = "There are no faces in the image. Should be at least 1."
_FACE_MODEL = "7.0"


@dataclass(frozen=True, slots=True)
class Context:
    resolver: ImageResolver
    faces: FaceStore
    models: ModelStore

    async def picture(self, params: dict[str, Any], name: str, operation: str) -> Picture:
        return await self.resolver.resolve(params.get(name), limits_for(operation))


@dataclass(frozen=True, slots=True)
class Outcome:
    response: dict[str, Any]
    pictures: tuple[Picture, ...] = field(default_factory=tuple)


Handler = Callable[[Context, dict[str, Any]], Awaitable[Outcome]]


def _integer(params: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    return int(optional_number(params, name, default, low, high))


def _names(
    params: dict[str, Any], name: str, allowed: set[str], default: list[str]
) -> frozenset[str]:
    value = params.get(name, default)
    if not isinstance(value, list) or not all(isinstance(v, str) and v in allowed for v in value):
        raise invalid_parameter(f"{name} must be a list of {sorted(allowed)}")
    return frozenset(value)


def _collection_id(params: dict[str, Any]) -> str:
    value = require_string(params, "CollectionId")
    if not _COLLECTION_ID.fullmatch(value):
        raise invalid_parameter("CollectionId has invalid characters")
    return value


def _ranked(items: list[dict[str, Any]], min_confidence: float, limit: int) -> list[dict[str, Any]]:
    kept = [i for i in items if i["Confidence"] >= min_confidence]
    kept.sort(key=lambda i: (-i["Confidence"], i["Name"]))
    return kept[:limit]


async def detect_labels(ctx: Context, params: dict[str, Any]) -> Outcome:
    max_labels = _integer(params, "MaxLabels", 1000, 0, 1000)
    min_conf = optional_number(params, "MinConfidence", 55.0, 0.0, 100.0)
    features = _names(
        params, "Features", {"GENERAL_LABELS", "IMAGE_PROPERTIES"}, ["GENERAL_LABELS"]
    )
    pic = await ctx.picture(params, "Image", "DetectLabels")
    a = pic.analysis
    response: dict[str, Any] = {"LabelModelVersion": "3.0"}
    response["Labels"] = (
        _ranked(answers.labels(a), min_conf, max_labels) if "GENERAL_LABELS" in features else []
    )
    if "IMAGE_PROPERTIES" in features:
        response["ImageProperties"] = answers.image_properties(a)
    return Outcome(response, (pic,))


async def detect_faces(ctx: Context, params: dict[str, Any]) -> Outcome:
    attributes = _names(
        params, "Attributes", {"DEFAULT", "ALL", *answers.FACE_ATTRIBUTES}, ["DEFAULT"]
    )
    pic = await ctx.picture(params, "Image", "DetectFaces")
    a = pic.analysis
    faces = [answers.face_detail(a, a.box, attributes)] if a.box is not None else []
    return Outcome({"FaceDetails": faces}, (pic,))


async def detect_moderation_labels(ctx: Context, params: dict[str, Any]) -> Outcome:
    optional_number(params, "MinConfidence", 50.0, 0.0, 100.0)
    pic = await ctx.picture(params, "Image", "DetectModerationLabels")
    response: dict[str, Any] = {"ModerationLabels": [], "ModerationModelVersion": "7.0"}
    if isinstance(params.get("ProjectVersion"), str):
        response["ProjectVersion"] = params["ProjectVersion"]
    return Outcome(response, (pic,))


async def detect_text(ctx: Context, params: dict[str, Any]) -> Outcome:
    pic = await ctx.picture(params, "Image", "DetectText")
    response = {"TextDetections": answers.text_detections(pic.analysis), "TextModelVersion": "3.0"}
    return Outcome(response, (pic,))


async def recognize_celebrities(ctx: Context, params: dict[str, Any]) -> Outcome:
    pic = await ctx.picture(params, "Image", "RecognizeCelebrities")
    a = pic.analysis
    unknown = [answers.compared_face(a, a.box)] if a.box is not None else []
    return Outcome({"CelebrityFaces": [], "UnrecognizedFaces": unknown}, (pic,))


async def detect_protective_equipment(ctx: Context, params: dict[str, Any]) -> Outcome:
    summary = params.get("SummarizationAttributes")
    if summary is not None:
        if (
            not isinstance(summary, dict)
            or not isinstance(summary.get("RequiredEquipmentTypes"), list)
            or "MinConfidence" not in summary
        ):
            raise invalid_parameter(
                "SummarizationAttributes needs MinConfidence and RequiredEquipmentTypes"
            )
        optional_number(summary, "MinConfidence", 0.0, 0.0, 100.0)
    pic = await ctx.picture(params, "Image", "DetectProtectiveEquipment")
    a = pic.analysis
    persons: list[dict[str, Any]] = []
    if a.box is not None:
        sure = answers.face_confidence(a)
        parts: list[dict[str, Any]] = [
            {"Name": part, "Confidence": sure, "EquipmentDetections": []}
            for part in ("FACE", "HEAD")
        ]
        persons.append(
            {"BodyParts": parts, "BoundingBox": a.box.as_api(), "Confidence": sure, "Id": 0}
        )
    response: dict[str, Any] = {"ProtectiveEquipmentModelVersion": "1.0", "Persons": persons}
    if summary is not None:
        ids = [p["Id"] for p in persons]
        without = ids if summary["RequiredEquipmentTypes"] else []
        response["Summary"] = {
            "PersonsWithRequiredEquipment": [i for i in ids if i not in without],
            "PersonsWithoutRequiredEquipment": without,
            "PersonsIndeterminate": [],
        }
    return Outcome(response, (pic,))


async def detect_custom_labels(ctx: Context, params: dict[str, Any]) -> Outcome:
    arn = require_string(params, "ProjectVersionArn")
    if not _PROJECT_VERSION_ARN.fullmatch(arn):
        raise invalid_parameter("ProjectVersionArn is not a project version ARN")
    ctx.models.require_running(arn)
    max_results = _integer(params, "MaxResults", 1000, 0, 1_000_000)
    min_conf = optional_number(params, "MinConfidence", 50.0, 0.0, 100.0)
    pic = await ctx.picture(params, "Image", "DetectCustomLabels")
    a = pic.analysis
    found: list[dict[str, Any]] = [{"Name": "canvas", "Confidence": 99.99}]
    if a.box is not None:
        geometry = {"BoundingBox": a.box.as_api(), "Polygon": a.box.polygon()}
        found.append(
            {"Name": "red-region", "Confidence": answers.face_confidence(a), "Geometry": geometry}
        )
    return Outcome({"CustomLabels": _ranked(found, min_conf, max_results)}, (pic,))


async def index_faces(ctx: Context, params: dict[str, Any]) -> Outcome:
    collection = ctx.faces.get(_collection_id(params))
    external = params.get("ExternalImageId")
    if external is not None and (
        not isinstance(external, str) or not _EXTERNAL_ID.fullmatch(external)
    ):
        raise invalid_parameter("ExternalImageId has invalid characters")
    attributes = _names(
        params, "DetectionAttributes", {"DEFAULT", "ALL", *answers.FACE_ATTRIBUTES}, ["DEFAULT"]
    )
    max_faces = _integer(params, "MaxFaces", 100, 1, 4096)
    pic = await ctx.picture(params, "Image", "IndexFaces")
    a = pic.analysis
    records = []
    if a.box is not None and max_faces >= 1:
        face = ctx.faces.index(collection, pic.digest, a.box, answers.face_confidence(a), external)
        api_face: dict[str, Any] = {
            "FaceId": face.face_id,
            "BoundingBox": a.box.as_api(),
            "ImageId": face.image_id,
            "Confidence": face.confidence,
            "IndexFacesModelVersion": _FACE_MODEL,
        }
        if external is not None:
            api_face["ExternalImageId"] = external
        records.append({"Face": api_face, "FaceDetail": answers.face_detail(a, a.box, attributes)})
    response = {"FaceRecords": records, "FaceModelVersion": _FACE_MODEL, "UnindexedFaces": []}
    return Outcome(response, (pic,))


async def search_faces_by_image(ctx: Context, params: dict[str, Any]) -> Outcome:
    collection = ctx.faces.get(_collection_id(params))
    max_faces = _integer(params, "MaxFaces", 4096, 1, 4096)
    threshold = optional_number(params, "FaceMatchThreshold", 80.0, 0.0, 100.0)
    pic = await ctx.picture(params, "Image", "SearchFacesByImage")
    a = pic.analysis
    if a.box is None:
        raise invalid_parameter(_NO_FACE)
    matches: list[dict[str, Any]] = []
    for face in collection.faces.values():
        similarity = round(a.box.iou(face.box) * 100, 4)
        if similarity >= threshold:
            api_face: dict[str, Any] = {
                "FaceId": face.face_id,
                "BoundingBox": face.box.as_api(),
                "ImageId": face.image_id,
                "Confidence": face.confidence,
                "IndexFacesModelVersion": _FACE_MODEL,
            }
            if face.external_image_id is not None:
                api_face["ExternalImageId"] = face.external_image_id
            matches.append({"Similarity": similarity, "Face": api_face})
    matches.sort(key=lambda m: (-m["Similarity"], m["Face"]["FaceId"]))
    response = {
        "SearchedFaceBoundingBox": a.box.as_api(),
        "SearchedFaceConfidence": answers.face_confidence(a),
        "FaceMatches": matches[:max_faces],
        "FaceModelVersion": _FACE_MODEL,
    }
    return Outcome(response, (pic,))


async def compare_faces(ctx: Context, params: dict[str, Any]) -> Outcome:
    threshold = optional_number(params, "SimilarityThreshold", 80.0, 0.0, 100.0)
    source = await ctx.picture(params, "SourceImage", "CompareFaces")
    target = await ctx.picture(params, "TargetImage", "CompareFaces")
    src, tgt = source.analysis, target.analysis
    if src.box is None:
        raise invalid_parameter(_NO_FACE)
    matches, unmatched = [], []
    if tgt.box is not None:
        similarity = round(src.box.iou(tgt.box) * 100, 4)
        face = answers.compared_face(tgt, tgt.box)
        if similarity >= threshold:
            matches.append({"Similarity": similarity, "Face": face})
        else:
            unmatched.append(face)
    response = {
        "SourceImageFace": {
            "BoundingBox": src.box.as_api(),
            "Confidence": answers.face_confidence(src),
        },
        "FaceMatches": matches,
        "UnmatchedFaces": unmatched,
    }
    return Outcome(response, (source, target))


async def create_collection(ctx: Context, params: dict[str, Any]) -> Outcome:
    collection = ctx.faces.create(_collection_id(params))
    response = {"StatusCode": 200, "CollectionArn": collection.arn, "FaceModelVersion": _FACE_MODEL}
    return Outcome(response)


async def delete_collection(ctx: Context, params: dict[str, Any]) -> Outcome:
    ctx.faces.delete(_collection_id(params))
    return Outcome({"StatusCode": 200})


async def describe_collection(ctx: Context, params: dict[str, Any]) -> Outcome:
    collection = ctx.faces.get(_collection_id(params))
    response = {
        "FaceCount": len(collection.faces),
        "FaceModelVersion": _FACE_MODEL,
        "CollectionARN": collection.arn,
        "CreationTimestamp": 1_700_000_000,
        "UserCount": 0,
    }
    return Outcome(response)


async def _describe_projects(ctx: Context, params: dict[str, Any]) -> Outcome:
    return Outcome(await describe_projects(ctx.models, params))


async def _describe_project_versions(ctx: Context, params: dict[str, Any]) -> Outcome:
    return Outcome(await describe_project_versions(ctx.models, params))


async def list_collections(ctx: Context, params: dict[str, Any]) -> Outcome:
    limit = _integer(params, "MaxResults", 1000, 0, 4096)
    token = params.get("NextToken", "0")
    if not isinstance(token, str) or not token.isdigit():
        raise invalid_parameter("NextToken is not valid")
    start = int(token)
    ids = ctx.faces.ids()
    page = ids[start : start + limit]
    response: dict[str, Any] = {
        "CollectionIds": page,
        "FaceModelVersions": [_FACE_MODEL] * len(page),
    }
    if start + limit < len(ids):
        response["NextToken"] = str(start + limit)
    return Outcome(response)


HANDLERS: dict[str, Handler] = {
    "DetectLabels": detect_labels,
    "DetectFaces": detect_faces,
    "DetectModerationLabels": detect_moderation_labels,
    "DetectText": detect_text,
    "RecognizeCelebrities": recognize_celebrities,
    "DetectProtectiveEquipment": detect_protective_equipment,
    "DetectCustomLabels": detect_custom_labels,
    "IndexFaces": index_faces,
    "SearchFacesByImage": search_faces_by_image,
    "CompareFaces": compare_faces,
    "CreateCollection": create_collection,
    "DeleteCollection": delete_collection,
    "DescribeCollection": describe_collection,
    "ListCollections": list_collections,
    "DescribeProjects": _describe_projects,
    "DescribeProjectVersions": _describe_project_versions,
}
