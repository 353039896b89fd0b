"""The third scope: answers that stop the whole run (``stops_run``, ``RunGuard``),
and which failures are outages (what the circuit breaker counts)."""

from __future__ import annotations

import botocore.exceptions as bex
import pytest

from batchrek.call import (
    RetryPolicy,
    RunGuard,
    build_operations,
    call_with_retry,
    classify,
    is_outage,
)
from batchrek.call.retry import RUN_CODES, stops_run
from batchrek.clock import FakeClock
from batchrek.errors import RunStopped
from batchrek.models import ErrorInfo
from tests.call.test_retry import raw_client_error

LABELS = build_operations(["detect_labels"], {})[0]
FACES = build_operations(["detect_faces"], {})[0]
INDEX = build_operations(["index_faces"], {"index_faces": {"CollectionId": "staff"}})[0]
CUSTOM = build_operations(
    ["detect_custom_labels"],
    {
        "detect_custom_labels": {
            "ProjectVersionArn": "arn:aws:rekognition:us-east-1:123456789012:project/p/version/v/1"
        }
    },
)[0]


def guard(streak: int = 3) -> RunGuard:
    return RunGuard(region="us-east-1", endpoint="http://rek", access_denied_streak=streak)


def denied() -> ErrorInfo:
    return ErrorInfo("AccessDeniedException", "not authorized")


@pytest.mark.parametrize(
    "code",
    [
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ResourceNotReadyException",
        "LimitExceededException",
        "ServiceQuotaExceededException",
    ],
)
def test_run_level_service_answers_stop_the_run_and_are_never_retried(code: str) -> None:
    info = classify(raw_client_error(code, 400))
    assert (stops_run(info), info.retryable) == (True, False)


@pytest.mark.parametrize(
    "exc",
    [
        bex.NoCredentialsError(),
        bex.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
    ],
)
def test_missing_credentials_stop_the_run(exc: Exception) -> None:
    info = classify(exc)
    assert (info.code, stops_run(info)) == ("NoCredentials", True)


@pytest.mark.parametrize(
    "code", ["InvalidS3ObjectException", "InvalidImageFormatException", "InvalidParameterException"]
)
def test_per_image_answers_do_not_stop_the_run(code: str) -> None:
    assert stops_run(classify(raw_client_error(code, 400))) is False


@pytest.mark.parametrize(
    ("info", "outage"),
    [
        (ErrorInfo("ConnectionError", "refused", True), True),
        (ErrorInfo("Timeout", "read timeout", True), True),
        (ErrorInfo("InternalServerError", "boom", True), True),
        (ErrorInfo("HTTP503", "unavailable", True), True),
        (ErrorInfo("ThrottlingException", "slow down", True), False),
        (ErrorInfo("SlowDown", "slow down", True), False),
        (ErrorInfo("ExpiredTokenException", "expired", True), False),
        (ErrorInfo("HTTP429", "too many", True), False),
        (ErrorInfo("InvalidImageFormatException", "bad", False), False),
    ],
)
def test_outages_are_the_endpoint_failing_not_throttles_or_bad_requests(
    info: ErrorInfo, outage: bool
) -> None:
    assert is_outage(info) is outage


def test_the_run_codes_include_every_run_level_code_of_the_docs() -> None:
    documented = {
        "NoCredentials",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ResourceNotReadyException",
        "LimitExceededException",
        "ServiceQuotaExceededException",
        "HumanLoopQuotaExceededException",
    }
    assert documented <= RUN_CODES


@pytest.mark.anyio
async def test_the_retry_loop_lets_a_run_stop_through() -> None:
    async def fn() -> str:
        raise RunStopped("stop")

    with pytest.raises(RunStopped):
        await call_with_retry(fn, RetryPolicy(), clock=FakeClock())


# -- RunGuard ---------------------------------------------------------------------


def test_a_per_image_error_is_recorded_as_it_is() -> None:
    info = ErrorInfo("InvalidImageFormatException", "bad")
    assert guard().check(LABELS, info) is info


def test_a_missing_collection_stops_the_run_naming_it_and_the_fix() -> None:
    with pytest.raises(RunStopped) as raised:
        guard().check(INDEX, ErrorInfo("ResourceNotFoundException", "no collection"))
    assert "collection 'staff' does not exist in us-east-1" in str(raised.value)
    assert "aws rekognition create-collection --collection-id staff" in str(raised.value)


def test_a_model_that_is_not_running_says_how_to_start_it() -> None:
    with pytest.raises(RunStopped, match="start-project-version --project-version-arn arn:aws"):
        guard().check(CUSTOM, ErrorInfo("ResourceNotReadyException", "not ready"))


def test_missing_credentials_say_so() -> None:
    with pytest.raises(RunStopped, match=r"^no AWS credentials found"):
        guard().check(LABELS, ErrorInfo("NoCredentials", "Unable to locate credentials"))


def test_unknown_credentials_name_the_endpoint() -> None:
    with pytest.raises(RunStopped, match="not valid at http://rek"):
        guard().check(LABELS, ErrorInfo("UnrecognizedClientException", "invalid token"))


def test_one_access_denial_is_a_retryable_record_not_a_stop() -> None:
    recorded = guard().check(LABELS, denied())
    assert (recorded.code, recorded.retryable) == ("AccessDeniedException", True)


def test_a_streak_of_access_denials_stops_the_run_naming_the_permission() -> None:
    g = guard(streak=3)
    g.check(LABELS, denied())
    g.check(LABELS, denied())
    with pytest.raises(RunStopped, match="grant the role rekognition:DetectLabels"):
        g.check(LABELS, denied())


def test_a_success_between_denials_resets_the_streak() -> None:
    g = guard(streak=2)
    g.check(LABELS, denied())
    g.succeeded(LABELS)
    assert g.check(LABELS, denied()).retryable is True


def test_denials_are_counted_per_operation() -> None:
    g = guard(streak=2)
    g.check(FACES, denied())
    g.succeeded(LABELS)  # another operation's success does not excuse this one
    with pytest.raises(RunStopped, match="rekognition:DetectFaces"):
        g.check(FACES, denied())
