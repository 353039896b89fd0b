"""Every key the emulator sends is one botocore's output shapes define.

botocore silently drops keys its model does not know, so a typo in the emulator
would vanish on the client side; this walks the raw JSON against the model.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import botocore.session
import pytest

from batchrek.emulator import EmulatorHandle
from batchrek.testing import corpus
from tests.emulator.test_emulator_protocol import post

MODEL = botocore.session.get_session().get_service_model("rekognition")
PHOTO = {"Bytes": base64.b64encode(corpus.photo(640, 480)).decode()}
ELSEWHERE = {"Bytes": base64.b64encode(corpus.photo(640, 480, box=(0.6, 0.1, 0.9, 0.3))).decode()}
ARN = "arn:aws:rekognition:us-east-1:123456789012:project/bed/version/bed.1/1700000000000"

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("CreateCollection", {"CollectionId": "shape-a"}),
    ("CreateCollection", {"CollectionId": "shape-b"}),
    ("DetectLabels", {"Image": PHOTO, "Features": ["GENERAL_LABELS", "IMAGE_PROPERTIES"]}),
    ("DetectFaces", {"Image": PHOTO, "Attributes": ["ALL"]}),
    ("DetectModerationLabels", {"Image": PHOTO, "ProjectVersion": ARN}),
    ("DetectText", {"Image": PHOTO}),
    ("RecognizeCelebrities", {"Image": PHOTO}),
    (
        "DetectProtectiveEquipment",
        {
            "Image": PHOTO,
            "SummarizationAttributes": {
                "MinConfidence": 80,
                "RequiredEquipmentTypes": ["FACE_COVER"],
            },
        },
    ),
    ("DetectCustomLabels", {"Image": PHOTO, "ProjectVersionArn": ARN}),
    (
        "IndexFaces",
        {
            "Image": PHOTO,
            "CollectionId": "shape-a",
            "ExternalImageId": "x",
            "DetectionAttributes": ["ALL"],
        },
    ),
    ("SearchFacesByImage", {"Image": PHOTO, "CollectionId": "shape-a"}),
    ("CompareFaces", {"SourceImage": PHOTO, "TargetImage": PHOTO}),
    ("CompareFaces", {"SourceImage": PHOTO, "TargetImage": ELSEWHERE}),
    ("ListCollections", {"MaxResults": 1}),
    ("DescribeCollection", {"CollectionId": "shape-a"}),
    ("DescribeProjects", {"ProjectNames": ["bed"]}),
    (
        "DescribeProjectVersions",
        {
            "ProjectArn": "arn:aws:rekognition:us-east-1:123456789012:project/bed/1700000000000",
            "VersionNames": ["bed.1"],
        },
    ),
    ("DeleteCollection", {"CollectionId": "shape-b"}),
]

_SCALARS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "long": (int,),
    "float": (float, int),
    "double": (float, int),
    "boolean": (bool,),
}


def undefined(value: Any, shape: Any, path: str) -> list[str]:
    """Paths in ``value`` that ``shape`` does not define, or whose type is wrong."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        problems = []
        for key, item in value.items():
            if key not in shape.members:
                problems.append(f"{path}.{key}: not in {shape.name}")
            else:
                problems += undefined(item, shape.members[key], f"{path}.{key}")
        return problems
    if kind == "list":
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [
            p for i, item in enumerate(value) for p in undefined(item, shape.member, f"{path}[{i}]")
        ]
    expected = _SCALARS.get(kind)
    if expected is not None and (
        not isinstance(value, expected) or (kind != "boolean" and isinstance(value, bool))
    ):
        return [f"{path}: {value!r} is not a {kind}"]
    enum = getattr(shape, "enum", None)
    if enum and value not in enum:
        return [f"{path}: {value!r} not in {enum}"]
    return []


@pytest.fixture
def responses(emu: EmulatorHandle) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for operation, params in CALLS:
        status, _, body = post(
            emu.endpoint_url, f"RekognitionService.{operation}", json.dumps(params).encode()
        )
        assert status == 200, (operation, body)
        found.append((operation, body))
    return found


def test_every_returned_key_is_in_the_output_shape(
    responses: list[tuple[str, dict[str, Any]]],
) -> None:
    problems = [
        p
        for operation, body in responses
        for p in undefined(body, MODEL.operation_model(operation).output_shape, operation)
    ]
    assert problems == []


def test_the_walk_covers_every_operation(responses: list[tuple[str, dict[str, Any]]]) -> None:
    from batchrek.emulator.operations import HANDLERS

    assert {operation for operation, _ in responses} == set(HANDLERS)


def test_the_walk_catches_an_unknown_key() -> None:
    shape = MODEL.operation_model("DetectLabels").output_shape
    assert undefined({"Labels": [{"Name": "x", "Box": {}}]}, shape, "DetectLabels") != []
