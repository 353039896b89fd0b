"""call.jsonproto: bodies as botocore's JSON serializer and parser make them."""

from __future__ import annotations

import base64
import datetime as dt
import json
from functools import cache
from typing import Any

import orjson
import pytest
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from batchrek.call.jsonproto import ResponseShape, UnsupportedShape, encode_request


@cache
def _model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("rekognition")


def _botocore_parse(api: str, body: bytes) -> dict[str, Any]:
    response = {"status_code": 200, "headers": {}, "body": body, "context": {}}
    parsed: dict[str, Any] = create_parser("json").parse(
        response, _model().operation_model(api).output_shape
    )
    parsed.pop("ResponseMetadata", None)
    return parsed


def _ours(api: str, body: bytes) -> dict[str, Any]:
    return ResponseShape(_model().operation_model(api).output_shape).parse(body)


def test_request_body_is_botocores_json() -> None:
    params = {
        "Image": {"Bytes": b"\x00\x01\xfe\xff" * 10},
        "MaxLabels": 7,
        "MinConfidence": 55.5,
        "Features": ["GENERAL_LABELS"],
        "Settings": {"GeneralLabels": {"LabelInclusionFilters": ["Dog"]}},
    }
    theirs = create_serializer("json").serialize_to_request(
        params, _model().operation_model("DetectLabels")
    )["body"]
    assert json.loads(encode_request(params)) == json.loads(theirs)


def test_request_timestamps_are_epoch_seconds_as_botocore() -> None:
    when = dt.datetime(2026, 11, 21, 12, 0, 30, tzinfo=dt.UTC)
    params = {"MaxResults": 5, "ProjectVersionArn": "x", "When": when}
    assert orjson.loads(encode_request(params))["When"] == int(when.timestamp())
    with pytest.raises(TypeError):
        encode_request({"x": object()})


def test_unknown_keys_and_nulls_are_dropped_in_model_order() -> None:
    body = orjson.dumps(
        {
            "LabelModelVersion": "3.0",
            "NotInTheModel": 1,
            "OrientationCorrection": None,
            "Labels": [
                {
                    "Parents": [],
                    "Confidence": 99,
                    "Name": "Dog",
                    "Instances": [{"BoundingBox": None, "Confidence": 90.5, "Extra": "x"}],
                },
                None,
            ],
        }
    )
    ours = _ours("DetectLabels", body)
    assert ours == _botocore_parse("DetectLabels", body)
    assert list(ours) == list(_botocore_parse("DetectLabels", body))
    assert list(ours["Labels"][0]) == ["Name", "Confidence", "Instances", "Parents"]


def test_blobs_and_timestamps_as_botocore() -> None:
    blob = base64.b64encode(b"\x89PNG...").decode()
    body = orjson.dumps(
        {
            "SessionId": "s",
            "Status": "SUCCEEDED",
            "ReferenceImage": {"Bytes": blob, "BoundingBox": {"Width": 0.5}},
            "AuditImages": [{"Bytes": blob}],
        }
    )
    ours = _ours("GetFaceLivenessSessionResults", body)
    assert ours == _botocore_parse("GetFaceLivenessSessionResults", body)
    assert ours["ReferenceImage"]["Bytes"] == b"\x89PNG..."
    times = orjson.dumps(
        {"ProjectDescriptions": [{"ProjectArn": "a", "CreationTimestamp": 1763726400.5}]}
    )
    ours = _ours("DescribeProjects", times)
    assert ours == _botocore_parse("DescribeProjects", times)
    assert isinstance(ours["ProjectDescriptions"][0]["CreationTimestamp"], dt.datetime)


def test_empty_body_is_an_empty_response() -> None:
    assert _ours("DetectText", b"") == _botocore_parse("DetectText", b"") == {}


def test_tagged_unions_are_left_to_botocore() -> None:
    class Union:
        type_name = "structure"
        is_document_type = False
        is_tagged_union = True
        serialization: dict[str, Any] = {}
        name = "U"

    with pytest.raises(UnsupportedShape):
        ResponseShape(Union())
