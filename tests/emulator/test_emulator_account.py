"""The account's side of the emulator: collections and Custom Labels models to
describe, access keys it knows, operations a role may not call. What batchrek's
preflight and run-level stops are rehearsed against."""

from __future__ import annotations

from typing import Any

import boto3
import botocore.exceptions as bex
import pytest
from botocore.config import Config

from batchrek.emulator import EmulatorHandle
from batchrek.emulator.projects import version_arn
from batchrek.testing import corpus
from tests.conftest import NO_RETRIES

PHOTO = {"Bytes": corpus.photo(200, 200)}
RUNNING = version_arn("shop", "v1")
STOPPED = version_arn("shop", "v2")


def code(exc: pytest.ExceptionInfo[bex.ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_describe_collection_answers_for_an_existing_collection(rekognition: Any) -> None:
    rekognition.create_collection(CollectionId="described")
    found = rekognition.describe_collection(CollectionId="described")
    assert (found["FaceCount"], found["CollectionARN"].endswith("collection/described")) == (
        0,
        True,
    )


def test_describe_collection_of_a_missing_one_is_resource_not_found(rekognition: Any) -> None:
    with pytest.raises(bex.ClientError) as raised:
        rekognition.describe_collection(CollectionId="nope")
    assert code(raised) == "ResourceNotFoundException"


def test_declared_models_are_described_with_their_status(
    emu: EmulatorHandle, rekognition: Any
) -> None:
    emu.configure(project_versions={RUNNING: "RUNNING", STOPPED: "STOPPED"})
    (project,) = rekognition.describe_projects(ProjectNames=["shop"])["ProjectDescriptions"]
    versions = rekognition.describe_project_versions(ProjectArn=project["ProjectArn"])
    statuses = {v["ProjectVersionArn"]: v["Status"] for v in versions["ProjectVersionDescriptions"]}
    assert statuses == {RUNNING: "RUNNING", STOPPED: "STOPPED"}


def test_a_declared_model_that_is_not_running_is_not_ready(
    emu: EmulatorHandle, rekognition: Any
) -> None:
    emu.configure(project_versions={STOPPED: "STOPPED"})
    with pytest.raises(bex.ClientError) as raised:
        rekognition.detect_custom_labels(Image=PHOTO, ProjectVersionArn=STOPPED)
    assert code(raised) == "ResourceNotReadyException"


def test_an_undeclared_model_does_not_exist_once_models_are_declared(
    emu: EmulatorHandle, rekognition: Any
) -> None:
    emu.configure(project_versions={RUNNING: "RUNNING"})
    with pytest.raises(bex.ClientError) as raised:
        rekognition.detect_custom_labels(Image=PHOTO, ProjectVersionArn=STOPPED)
    assert code(raised) == "ResourceNotFoundException"


def test_without_declarations_every_model_runs(rekognition: Any) -> None:
    project = rekognition.describe_projects(ProjectNames=["any"])["ProjectDescriptions"][0]
    (version,) = rekognition.describe_project_versions(
        ProjectArn=project["ProjectArn"], VersionNames=["v9"]
    )["ProjectVersionDescriptions"]
    assert version["Status"] == "RUNNING"


def test_an_unknown_model_status_is_refused(emu: EmulatorHandle) -> None:
    from batchrek.emulator import EmulatorControlError

    with pytest.raises(EmulatorControlError, match="unknown model status"):
        emu.configure(project_versions={RUNNING: "SLEEPING"})


def test_a_request_signed_with_an_unknown_access_key_is_unrecognized(
    emu: EmulatorHandle, rekognition: Any
) -> None:
    emu.configure(access_keys=["AKIDKNOWN"])
    with pytest.raises(bex.ClientError) as raised:
        rekognition.detect_labels(Image=PHOTO)
    assert code(raised) == "UnrecognizedClientException"


def test_a_request_signed_with_a_known_access_key_is_answered(emu: EmulatorHandle) -> None:
    emu.configure(access_keys=["AKIDKNOWN"])
    client = boto3.client(
        "rekognition",
        endpoint_url=emu.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="AKIDKNOWN",
        aws_secret_access_key="x",
        config=Config(retries=NO_RETRIES),
    )
    assert "Labels" in client.detect_labels(Image=PHOTO)


def test_a_denied_operation_is_access_denied_and_not_billed(
    emu: EmulatorHandle, rekognition: Any
) -> None:
    emu.configure(denied_operations=["DetectLabels"])
    with pytest.raises(bex.ClientError) as raised:
        rekognition.detect_labels(Image=PHOTO)
    assert (code(raised), emu.analyses("DetectLabels")) == ("AccessDeniedException", {})


def test_other_operations_stay_allowed(emu: EmulatorHandle, rekognition: Any) -> None:
    emu.configure(denied_operations=["DetectLabels"])
    assert "FaceDetails" in rekognition.detect_faces(Image=PHOTO)
