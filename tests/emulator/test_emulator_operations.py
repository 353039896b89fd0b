"""Every operation answers through unmodified boto3 and aioboto3 clients, from the pixels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from batchrek.emulator import EmulatorHandle
from batchrek.testing import corpus
from tests.conftest import aio_rekognition_client

PHOTO = corpus.photo(640, 480)
COLLECTION = "bed-faces"
ARN = "arn:aws:rekognition:us-east-1:123456789012:project/bed/version/bed.1/1700000000000"


def corners(box: dict[str, float]) -> tuple[float, float, float, float]:
    """A BoundingBox as (left, top, right, bottom), comparable with corpus boxes."""
    return (box["Left"], box["Top"], box["Left"] + box["Width"], box["Top"] + box["Height"])


def _label_box(r: dict[str, Any]) -> dict[str, float]:
    (label,) = [x for x in r["Labels"] if x["Name"] == "Red Region"]
    box: dict[str, float] = label["Instances"][0]["BoundingBox"]
    return box


def _text_box(r: dict[str, Any]) -> dict[str, float]:
    (line,) = [t for t in r["TextDetections"] if t["Type"] == "LINE" and t["DetectedText"] == "RED"]
    box: dict[str, float] = line["Geometry"]["BoundingBox"]
    return box


def _custom_box(r: dict[str, Any]) -> dict[str, float]:
    (label,) = [x for x in r["CustomLabels"] if x["Name"] == "red-region"]
    box: dict[str, float] = label["Geometry"]["BoundingBox"]
    return box


@dataclass(frozen=True)
class Case:
    method: str
    box: Callable[[dict[str, Any]], dict[str, float]]
    kwargs: dict[str, Any] = field(default_factory=lambda: {"Image": {"Bytes": PHOTO}})
    collection: bool = False


IMAGE_CASES = {
    "DetectLabels": Case("detect_labels", _label_box),
    "DetectFaces": Case("detect_faces", lambda r: r["FaceDetails"][0]["BoundingBox"]),
    "DetectText": Case("detect_text", _text_box),
    "RecognizeCelebrities": Case(
        "recognize_celebrities", lambda r: r["UnrecognizedFaces"][0]["BoundingBox"]
    ),
    "DetectProtectiveEquipment": Case(
        "detect_protective_equipment", lambda r: r["Persons"][0]["BoundingBox"]
    ),
    "DetectCustomLabels": Case(
        "detect_custom_labels",
        _custom_box,
        {"Image": {"Bytes": PHOTO}, "ProjectVersionArn": ARN},
    ),
    "IndexFaces": Case(
        "index_faces",
        lambda r: r["FaceRecords"][0]["Face"]["BoundingBox"],
        {"Image": {"Bytes": PHOTO}, "CollectionId": COLLECTION, "ExternalImageId": "photo-1"},
        collection=True,
    ),
    "SearchFacesByImage": Case(
        "search_faces_by_image",
        lambda r: r["SearchedFaceBoundingBox"],
        {"Image": {"Bytes": PHOTO}, "CollectionId": COLLECTION},
        collection=True,
    ),
    "CompareFaces": Case(
        "compare_faces",
        lambda r: r["FaceMatches"][0]["Face"]["BoundingBox"],
        {"SourceImage": {"Bytes": PHOTO}, "TargetImage": {"Bytes": PHOTO}},
    ),
}


@pytest.mark.parametrize("operation", sorted(IMAGE_CASES))
def test_boto3_gets_the_red_box(rekognition: Any, operation: str) -> None:
    case = IMAGE_CASES[operation]
    if case.collection:
        rekognition.create_collection(CollectionId=COLLECTION)
    response = getattr(rekognition, case.method)(**case.kwargs)
    assert corners(case.box(response)) == pytest.approx(corpus.DEFAULT_BOX, abs=0.01)


@pytest.mark.anyio
@pytest.mark.parametrize("operation", sorted(IMAGE_CASES))
async def test_aioboto3_gets_the_red_box(emu: EmulatorHandle, operation: str) -> None:
    case = IMAGE_CASES[operation]
    async with aio_rekognition_client(emu.endpoint_url) as client:
        if case.collection:
            await client.create_collection(CollectionId=COLLECTION)
        response = await getattr(client, case.method)(**case.kwargs)
    assert corners(case.box(response)) == pytest.approx(corpus.DEFAULT_BOX, abs=0.01)


def test_moderation_labels_are_empty(rekognition: Any) -> None:
    response = rekognition.detect_moderation_labels(Image={"Bytes": PHOTO})
    assert response["ModerationLabels"] == []


@pytest.mark.anyio
async def test_aioboto3_moderation_labels_are_empty(emu: EmulatorHandle) -> None:
    async with aio_rekognition_client(emu.endpoint_url) as client:
        response = await client.detect_moderation_labels(Image={"Bytes": PHOTO})
    assert response["ModerationLabels"] == []


def test_collections_are_created_listed_and_deleted(rekognition: Any) -> None:
    rekognition.create_collection(CollectionId="b")
    rekognition.create_collection(CollectionId="a")
    rekognition.delete_collection(CollectionId="b")
    assert rekognition.list_collections()["CollectionIds"] == ["a"]


@pytest.mark.anyio
async def test_aioboto3_collections_round_trip(emu: EmulatorHandle) -> None:
    async with aio_rekognition_client(emu.endpoint_url) as client:
        await client.create_collection(CollectionId="x")
        listed = await client.list_collections()
        await client.delete_collection(CollectionId="x")
        after = await client.list_collections()
    assert (listed["CollectionIds"], after["CollectionIds"]) == (["x"], [])


def test_list_collections_pages(rekognition: Any) -> None:
    for name in ("c1", "c2", "c3"):
        rekognition.create_collection(CollectionId=name)
    first = rekognition.list_collections(MaxResults=2)
    second = rekognition.list_collections(MaxResults=2, NextToken=first["NextToken"])
    assert first["CollectionIds"] + second["CollectionIds"] == ["c1", "c2", "c3"]


def test_existing_collection_is_refused(rekognition: Any) -> None:
    rekognition.create_collection(CollectionId="dup")
    with pytest.raises(rekognition.exceptions.ResourceAlreadyExistsException):
        rekognition.create_collection(CollectionId="dup")


def test_index_faces_needs_an_existing_collection(rekognition: Any) -> None:
    with pytest.raises(rekognition.exceptions.ResourceNotFoundException):
        rekognition.index_faces(CollectionId="nope", Image={"Bytes": PHOTO})


def test_search_finds_the_indexed_face(rekognition: Any) -> None:
    rekognition.create_collection(CollectionId=COLLECTION)
    indexed = rekognition.index_faces(CollectionId=COLLECTION, Image={"Bytes": PHOTO})
    found = rekognition.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": PHOTO})
    face_id = indexed["FaceRecords"][0]["Face"]["FaceId"]
    assert [m["Face"]["FaceId"] for m in found["FaceMatches"]] == [face_id]


def test_search_without_a_face_is_invalid(rekognition: Any) -> None:
    rekognition.create_collection(CollectionId=COLLECTION)
    no_red = corpus.png16()
    with pytest.raises(rekognition.exceptions.InvalidParameterException):
        rekognition.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": no_red})


def test_canvas_alias_gives_the_displayed_size(rekognition: Any) -> None:
    response = rekognition.detect_labels(Image={"Bytes": corpus.photo(300, 200)})
    (canvas,) = [x for x in response["Labels"] if x["Name"] == "Canvas"]
    assert canvas["Aliases"] == [{"Name": "300x200"}]


def test_text_line_gives_the_displayed_size(rekognition: Any) -> None:
    response = rekognition.detect_text(Image={"Bytes": corpus.photo(300, 200)})
    lines = [t["DetectedText"] for t in response["TextDetections"] if t["Type"] == "LINE"]
    assert "300x200" in lines


def test_image_properties_come_with_the_feature(rekognition: Any) -> None:
    response = rekognition.detect_labels(
        Image={"Bytes": PHOTO}, Features=["GENERAL_LABELS", "IMAGE_PROPERTIES"]
    )
    assert set(response["ImageProperties"]["Quality"]) == {"Brightness", "Sharpness", "Contrast"}


def test_max_labels_keeps_the_most_confident(rekognition: Any) -> None:
    response = rekognition.detect_labels(Image={"Bytes": PHOTO}, MaxLabels=1)
    assert [x["Name"] for x in response["Labels"]] == ["Canvas"]


def test_detect_faces_all_adds_attributes(rekognition: Any) -> None:
    response = rekognition.detect_faces(Image={"Bytes": PHOTO}, Attributes=["ALL"])
    assert "AgeRange" in response["FaceDetails"][0]


def test_no_red_means_no_face(rekognition: Any) -> None:
    response = rekognition.detect_faces(Image={"Bytes": corpus.png16()})
    assert response["FaceDetails"] == []


def test_same_image_same_answer(rekognition: Any) -> None:
    first = rekognition.detect_labels(Image={"Bytes": PHOTO})
    second = rekognition.detect_labels(Image={"Bytes": PHOTO})
    assert first["Labels"] == second["Labels"]


def test_ppe_summary_lists_the_person_without_equipment(rekognition: Any) -> None:
    response = rekognition.detect_protective_equipment(
        Image={"Bytes": PHOTO},
        SummarizationAttributes={"MinConfidence": 80, "RequiredEquipmentTypes": ["FACE_COVER"]},
    )
    assert response["Summary"]["PersonsWithoutRequiredEquipment"] == [0]
