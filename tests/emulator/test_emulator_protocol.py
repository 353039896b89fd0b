"""The wire protocol: AWS JSON 1.1, auth header required, errors as botocore expects."""

from __future__ import annotations

import base64
import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

from batchrek.emulator import EmulatorHandle
from batchrek.testing import corpus

AUTH = "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/rekognition/aws4_request"


def post(
    endpoint_url: str, target: str, body: bytes, *, auth: bool = True
) -> tuple[int, dict[str, str], Any]:
    """One raw call: status, headers (lower-cased names) and the parsed JSON body."""
    parts = urlsplit(endpoint_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}
    if auth:
        headers["Authorization"] = AUTH
    try:
        conn.request("POST", "/", body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        found = {k.lower(): v for k, v in response.getheaders()}
        return response.status, found, json.loads(raw)
    finally:
        conn.close()


def image_body(**params: Any) -> bytes:
    data = base64.b64encode(corpus.photo(320, 240)).decode()
    return json.dumps({"Image": {"Bytes": data}, **params}).encode()


def test_missing_auth_header_is_rejected(emu: EmulatorHandle) -> None:
    status, _, body = post(
        emu.endpoint_url, "RekognitionService.DetectLabels", image_body(), auth=False
    )
    expected = {
        "__type": "MissingAuthenticationTokenException",
        "message": "Missing Authentication Token",
    }
    assert (status, body) == (400, expected)


def test_unknown_operation_is_named(emu: EmulatorHandle) -> None:
    status, _, body = post(emu.endpoint_url, "RekognitionService.DetectDragons", b"{}")
    assert (status, body["__type"]) == (400, "UnknownOperationException")


def test_success_carries_a_request_id(emu: EmulatorHandle) -> None:
    _, headers, _ = post(emu.endpoint_url, "RekognitionService.DetectLabels", image_body())
    assert headers["x-amzn-requestid"]


def test_error_carries_a_request_id(emu: EmulatorHandle) -> None:
    _, headers, _ = post(emu.endpoint_url, "RekognitionService.DetectLabels", b"{}")
    assert headers["x-amzn-requestid"]


def test_error_body_has_type_and_message(emu: EmulatorHandle) -> None:
    status, _, body = post(emu.endpoint_url, "RekognitionService.DetectLabels", b"{}")
    assert (status, set(body)) == (400, {"__type", "Message"})


def test_invalid_json_is_a_serialization_error(emu: EmulatorHandle) -> None:
    _, _, body = post(emu.endpoint_url, "RekognitionService.DetectLabels", b"{not json")
    assert body["__type"] == "SerializationException"


def test_responses_use_the_json_content_type(emu: EmulatorHandle) -> None:
    _, headers, _ = post(emu.endpoint_url, "RekognitionService.DetectLabels", image_body())
    assert headers["content-type"].startswith("application/x-amz-json-1.1")


def test_boto3_sees_the_request_id(rekognition: Any) -> None:
    response = rekognition.detect_labels(Image={"Bytes": corpus.photo()})
    assert response["ResponseMetadata"]["RequestId"]


def test_throttle_rate_gives_throttling_exception(emu: EmulatorHandle, rekognition: Any) -> None:
    emu.configure(throttle_rate=1.0)
    with pytest.raises(rekognition.exceptions.ThrottlingException):
        rekognition.detect_labels(Image={"Bytes": corpus.photo()})


def test_fault_rate_gives_internal_server_error_500(emu: EmulatorHandle) -> None:
    emu.configure(fault_rate=1.0)
    status, _, body = post(emu.endpoint_url, "RekognitionService.DetectLabels", image_body())
    assert (status, body["__type"]) == (500, "InternalServerError")


def test_boto3_maps_the_fault_to_its_exception(emu: EmulatorHandle, rekognition: Any) -> None:
    emu.configure(fault_rate=1.0)
    with pytest.raises(rekognition.exceptions.InternalServerError):
        rekognition.detect_labels(Image={"Bytes": corpus.photo()})


def test_drop_closes_the_connection_without_a_response(
    emu: EmulatorHandle, rekognition: Any
) -> None:
    emu.configure(drop_rate=1.0)
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        rekognition.detect_labels(Image={"Bytes": corpus.photo()})


def test_quota_error_is_provisioned_throughput_exceeded(
    emu: EmulatorHandle, rekognition: Any
) -> None:
    emu.configure(quota_tps=0)
    with pytest.raises(rekognition.exceptions.ProvisionedThroughputExceededException) as caught:
        rekognition.detect_labels(Image={"Bytes": corpus.photo()})
    assert caught.value.response["Error"]["Message"] == "Provisioned Rate exceeded."
