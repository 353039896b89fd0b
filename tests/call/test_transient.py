"""Calls behind a breaker (``guarded``) and the transient retry of downloads and
uploads (``TransientRetry``), on a fake clock."""

from __future__ import annotations

import pytest

from batchrek.call import Breakers, BreakerSettings, CircuitBreaker, TransientRetry, guarded
from batchrek.call.retry import RetryPolicy
from batchrek.clock import FakeClock
from batchrek.errors import ItemError, OutputFailed, RunStopped, ServiceOutage
from tests.call.test_retry import failing, raw_client_error

pytestmark = pytest.mark.anyio

SETTINGS = BreakerSettings(threshold=2, probe_s=1.0, probe_max_s=2.0, outage_timeout_s=60.0)
DOWN = raw_client_error("InternalError", 500)
SLOW_DOWN = raw_client_error("SlowDown", 503)
DENIED = raw_client_error("AccessDenied", 403)


async def test_once_the_breaker_is_open_an_outage_is_waited_out_inside_one_attempt() -> None:
    b = CircuitBreaker("s3", SETTINGS, clock=FakeClock())
    with pytest.raises(type(DOWN)):  # the first failure is the call's own
        await guarded(b, failing([DOWN])[0])
    fn, calls = failing([DOWN] * 3)  # the second opens the breaker: waited out
    assert (await guarded(b, fn), len(calls), b.state, b.trips) == ("ok", 4, "closed", 1)


async def test_a_failure_below_the_threshold_is_raised_to_the_caller() -> None:
    b = CircuitBreaker("s3", SETTINGS, clock=FakeClock())
    fn, _ = failing([DOWN])
    with pytest.raises(type(DOWN)):
        await guarded(b, fn)


@pytest.mark.parametrize(
    "stop", [RunStopped("stop"), OutputFailed("s3://b/p", RuntimeError("SlowDown"))]
)
async def test_a_run_stop_passes_through_and_leaves_the_breaker_alone(
    stop: RunStopped | OutputFailed,
) -> None:
    b = CircuitBreaker("s3", SETTINGS, clock=FakeClock())
    fn, _ = failing([stop])
    with pytest.raises(type(stop)):
        await guarded(b, fn)
    assert b.state == "closed"


def retry(clock: FakeClock, attempts: int = 4) -> TransientRetry:
    return TransientRetry(
        RetryPolicy(max_attempts=attempts), Breakers(SETTINGS, clock=clock), clock=clock
    )


async def test_slow_down_is_retried_until_it_succeeds() -> None:
    fn, calls = failing([SLOW_DOWN, SLOW_DOWN])
    assert (await retry(FakeClock())(fn, endpoint="s3"), len(calls)) == ("ok", 3)


async def test_the_last_error_is_raised_unchanged_when_retries_run_out() -> None:
    fn, calls = failing([SLOW_DOWN] * 10)
    with pytest.raises(type(SLOW_DOWN)) as raised:
        await retry(FakeClock(), attempts=3)(fn, endpoint="s3")
    assert (raised.value is SLOW_DOWN, len(calls)) == (True, 3)


async def test_a_permanent_error_is_raised_after_one_call() -> None:
    fn, calls = failing([DENIED])
    with pytest.raises(type(DENIED)):
        await retry(FakeClock())(fn, endpoint="s3")
    assert len(calls) == 1


async def test_an_endpoint_down_past_the_outage_timeout_stops_the_run() -> None:
    fn, _ = failing([DOWN] * 10_000)
    with pytest.raises(ServiceOutage, match="the S3 endpoint x has not answered"):
        await retry(FakeClock())(fn, endpoint="s3 x", name="the S3 endpoint x")


async def test_a_url_host_past_the_timeout_fails_its_image_retryably_at_once() -> None:
    clock = FakeClock()
    r = retry(clock)
    fn, _ = failing([DOWN] * 10_000)
    with pytest.raises(ItemError):
        await r(fn, endpoint="url h", fatal=False)
    fn, calls = failing([])
    with pytest.raises(ItemError) as raised:
        await r(fn, endpoint="url h", fatal=False)
    assert (raised.value.code, raised.value.retryable, calls) == ("HostUnavailable", True, [])
