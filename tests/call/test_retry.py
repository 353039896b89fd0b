"""Error classification and the retry loop, with time owned by a FakeClock."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import anyio
import boto3
import botocore.exceptions as bex
import pytest
from aiobotocore.config import AioConfig
from botocore.stub import Stubber

from batchrek.call.retry import (
    Outcome,
    RetryPolicy,
    botocore_config_kwargs,
    call_with_retry,
    classify,
    is_quota_throttle,
    is_throttle,
    needs_credential_refresh,
)
from batchrek.clock import FakeClock
from batchrek.errors import ItemError, OutputFailed, RunStopped
from batchrek.models import ErrorInfo

RETRYABLE = [
    ("ProvisionedThroughputExceededException", 400),
    ("ThrottlingException", 400),
    ("ThrottlingException", 500),
    ("InternalServerError", 500),
    ("ServiceUnavailable", 503),
    ("RequestTimeout", 408),
]
PERMANENT = [
    "InvalidImageFormatException",
    "ImageTooLargeException",
    "InvalidS3ObjectException",
    "InvalidParameterException",
    "AccessDeniedException",
    "ResourceNotFoundException",
    "ResourceNotReadyException",
    "LimitExceededException",
    "ServiceQuotaExceededException",
    "HumanLoopQuotaExceededException",
    "ValidationException",
]
IMAGE = {"Bytes": b"\xff\xd8\xff"}


@pytest.fixture(scope="module")
def rekognition() -> Any:
    """A real botocore client with a Stubber: errors come from its modelled classes."""
    return boto3.client(
        "rekognition",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def service_error(client: Any, code: str, status: int = 400) -> BaseException:
    with Stubber(client) as stub:
        stub.add_client_error("detect_labels", service_error_code=code, http_status_code=status)
        try:
            client.detect_labels(Image=IMAGE)
        except bex.ClientError as exc:
            raised: BaseException = exc
            return raised
    raise AssertionError("the stub did not raise")


def raw_client_error(code: str | None, status: int, message: str = "boom") -> bex.ClientError:
    error: dict[str, Any] = {"Message": message}
    if code is not None:
        error["Code"] = code
    response: Any = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}
    return bex.ClientError(response, "DetectLabels")


# -- classify -------------------------------------------------------------------


@pytest.mark.parametrize(("code", "status"), RETRYABLE)
def test_service_retryable_codes_are_retryable(rekognition: Any, code: str, status: int) -> None:
    info = classify(service_error(rekognition, code, status))
    assert (info.code, info.retryable) == (code, True)


@pytest.mark.parametrize("code", PERMANENT)
def test_service_permanent_codes_are_not_retryable(rekognition: Any, code: str) -> None:
    info = classify(service_error(rekognition, code))
    assert (info.code, info.retryable) == (code, False)


def test_modelled_exception_class_keeps_its_message(rekognition: Any) -> None:
    with Stubber(rekognition) as stub:
        stub.add_client_error(
            "detect_labels",
            service_error_code="ProvisionedThroughputExceededException",
            service_message="Provisioned Rate exceeded.",
        )
        with pytest.raises(rekognition.exceptions.ProvisionedThroughputExceededException) as e:
            rekognition.detect_labels(Image=IMAGE)
    assert classify(e.value).message == "Provisioned Rate exceeded."


def test_bare_5xx_without_a_code_is_retryable() -> None:
    info = classify(raw_client_error(None, 502))
    assert (info.code, info.retryable) == ("HTTP502", True)


def test_unknown_5xx_code_is_retryable() -> None:
    assert classify(raw_client_error("SomethingBroke", 500)).retryable


def test_permanent_code_stays_permanent_even_with_a_5xx_status() -> None:
    assert not classify(raw_client_error("InvalidParameterException", 500)).retryable


def test_unknown_4xx_code_is_permanent() -> None:
    assert not classify(raw_client_error("BrandNewException", 400)).retryable


@pytest.mark.parametrize("code", ["ExpiredTokenException", "ExpiredToken", "RequestExpired"])
def test_expired_credentials_are_retryable_after_a_refresh(code: str) -> None:
    info = classify(raw_client_error(code, 400))
    assert (info.retryable, needs_credential_refresh(info)) == (True, True)


def test_throttle_does_not_ask_for_a_credential_refresh(rekognition: Any) -> None:
    info = classify(service_error(rekognition, "ThrottlingException"))
    assert not needs_credential_refresh(info)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (bex.EndpointConnectionError(endpoint_url="https://x"), "ConnectionError"),
        (bex.ConnectionClosedError(endpoint_url="https://x"), "ConnectionError"),
        (bex.ReadTimeoutError(endpoint_url="https://x"), "Timeout"),
        (bex.ConnectTimeoutError(endpoint_url="https://x"), "Timeout"),
        (aiohttp.ServerDisconnectedError(), "ConnectionError"),
        (aiohttp.ClientConnectionError("reset"), "ConnectionError"),
        (ConnectionResetError(104, "Connection reset by peer"), "ConnectionError"),
        (TimeoutError(), "Timeout"),
    ],
)
def test_transport_errors_are_retryable(exc: BaseException, code: str) -> None:
    info = classify(exc)
    assert (info.code, info.retryable) == (code, True)


def test_item_error_keeps_its_own_info() -> None:
    err = ItemError("ImageTooLarge", "7 MB after transcoding", retryable=False)
    assert classify(err) == ErrorInfo("ImageTooLarge", "7 MB after transcoding", False)


def test_anything_else_is_a_permanent_internal_client_error() -> None:
    info = classify(KeyError("Labels"))
    assert (info.code, info.retryable, "KeyError" in info.message) == (
        "InternalClientError",
        False,
        True,
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ProvisionedThroughputExceededException", True),
        ("ThrottlingException", True),
        ("InternalServerError", False),
        ("ConnectionError", False),
    ],
)
def test_is_throttle(code: str, expected: bool) -> None:
    assert is_throttle(ErrorInfo(code, "", True)) is expected


def test_only_the_quota_code_is_a_quota_throttle() -> None:
    codes = ["ProvisionedThroughputExceededException", "ThrottlingException"]
    assert [is_quota_throttle(ErrorInfo(c, "", True)) for c in codes] == [True, False]


# -- call_with_retry --------------------------------------------------------------


def failing(
    errors: list[BaseException], value: str = "ok"
) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """A call that raises ``errors`` in turn, then returns ``value``; counts calls."""
    calls: list[int] = []

    async def fn() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return value

    return fn, calls


THROTTLE = raw_client_error("ProvisionedThroughputExceededException", 400)
BAD_IMAGE = raw_client_error("InvalidImageFormatException", 400)


@pytest.mark.anyio
async def test_success_takes_one_attempt_and_no_sleep() -> None:
    clock = FakeClock()
    fn, _ = failing([])
    outcome = await call_with_retry(fn, RetryPolicy(), clock=clock)
    assert (outcome, clock.slept) == (Outcome("ok", None, 1), [])


@pytest.mark.anyio
async def test_retryable_errors_are_retried_until_success() -> None:
    fn, _ = failing([THROTTLE, THROTTLE])
    outcome = await call_with_retry(fn, RetryPolicy(), clock=FakeClock())
    assert (outcome.value, outcome.attempts) == ("ok", 3)


@pytest.mark.anyio
async def test_permanent_error_returns_after_one_attempt() -> None:
    clock = FakeClock()
    fn, _ = failing([BAD_IMAGE])
    outcome = await call_with_retry(fn, RetryPolicy(), clock=clock)
    assert (outcome.error, outcome.attempts, clock.slept) == (classify(BAD_IMAGE), 1, [])


@pytest.mark.anyio
@pytest.mark.parametrize(
    "stop", [RunStopped("denied"), OutputFailed("s3://b/p", RuntimeError("SlowDown"))]
)
async def test_a_run_stop_is_raised_never_returned_as_the_calls_outcome(
    stop: RunStopped | OutputFailed,
) -> None:
    # An outcome would become this image's error record, and a rerun would skip it.
    fn, calls = failing([THROTTLE, stop])
    with pytest.raises(type(stop)):
        await call_with_retry(fn, RetryPolicy(), clock=FakeClock())
    assert len(calls) == 2


@pytest.mark.anyio
async def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    fn, calls = failing([THROTTLE] * 10)
    outcome = await call_with_retry(fn, RetryPolicy(max_attempts=4), clock=FakeClock())
    assert (outcome.error, outcome.attempts, len(calls)) == (classify(THROTTLE), 4, 4)


@pytest.mark.anyio
async def test_no_sleep_starts_that_would_pass_the_deadline() -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=100, base_s=1.0, cap_s=1.0, deadline_s=5.0)
    fn, _ = failing([THROTTLE] * 100)
    await call_with_retry(fn, policy, clock=clock, rng=random.Random(7))
    assert clock.now <= 5.0


@pytest.mark.anyio
async def test_deadline_ends_the_loop_before_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=100, base_s=1.0, cap_s=1.0, deadline_s=5.0)
    fn, _ = failing([THROTTLE] * 100)
    outcome = await call_with_retry(fn, policy, clock=FakeClock(), rng=random.Random(7))
    assert 2 <= outcome.attempts < 100


@pytest.mark.anyio
async def test_backoff_is_full_jitter_within_the_exponential_bound() -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=9, base_s=0.1, cap_s=2.0, deadline_s=None)
    fn, _ = failing([THROTTLE] * 8)
    await call_with_retry(fn, policy, clock=clock, rng=random.Random(1))
    bounds = [min(2.0, 0.1 * 2**n) for n in range(8)]
    assert all(0 <= s <= b for s, b in zip(clock.slept, bounds, strict=True))


@pytest.mark.anyio
async def test_backoff_is_reproducible_with_a_seeded_random() -> None:
    async def sleeps(seed: int) -> list[float]:
        clock = FakeClock()
        fn, _ = failing([THROTTLE] * 5)
        await call_with_retry(fn, RetryPolicy(), clock=clock, rng=random.Random(seed))
        return clock.slept

    assert await sleeps(42) == await sleeps(42)


@pytest.mark.anyio
async def test_backoff_matches_uniform_draws_from_the_seeded_random() -> None:
    clock = FakeClock()
    fn, _ = failing([THROTTLE] * 3)
    await call_with_retry(fn, RetryPolicy(base_s=0.5), clock=clock, rng=random.Random(3))
    rng = random.Random(3)
    assert clock.slept == [rng.uniform(0, 0.5 * 2**n) for n in range(3)]


@pytest.mark.anyio
async def test_on_retry_hears_each_retried_failure() -> None:
    heard: list[tuple[int, str, float]] = []
    clock = FakeClock()
    fn, _ = failing([THROTTLE, THROTTLE])
    await call_with_retry(
        fn, RetryPolicy(), clock=clock, on_retry=lambda n, i, s: heard.append((n, i.code, s))
    )
    code = "ProvisionedThroughputExceededException"
    assert heard == [(1, code, clock.slept[0]), (2, code, clock.slept[1])]


@pytest.mark.anyio
async def test_before_retry_is_awaited_after_the_backoff_before_each_retry() -> None:
    clock = FakeClock()
    seen: list[tuple[str, float]] = []

    async def before_retry(info: ErrorInfo) -> None:
        seen.append((info.code, clock.now))
        await clock.sleep(10.0)  # e.g. a global throttle pause

    fn, _ = failing([THROTTLE])
    outcome = await call_with_retry(fn, RetryPolicy(), clock=clock, before_retry=before_retry)
    code = "ProvisionedThroughputExceededException"
    assert (seen, outcome.value) == ([(code, clock.slept[0])], "ok")


@pytest.mark.anyio
async def test_cancellation_propagates_instead_of_becoming_an_outcome() -> None:
    async def fn() -> str:
        raise anyio.get_cancelled_exc_class()()

    with pytest.raises(anyio.get_cancelled_exc_class()):
        await call_with_retry(fn, RetryPolicy(), clock=FakeClock())


def test_policy_rejects_zero_attempts() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


# -- botocore config --------------------------------------------------------------


def test_botocore_config_is_accepted_by_aioconfig() -> None:
    config = AioConfig(**botocore_config_kwargs(64))
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}


def test_botocore_pool_is_not_smaller_than_concurrency() -> None:
    assert botocore_config_kwargs(200)["max_pool_connections"] >= 200
