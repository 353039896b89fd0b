"""Source downloads retried on transient errors: the next attempt gets the bytes,
and what a failed attempt reserved in the run's byte budget is given back first."""

from __future__ import annotations

from typing import Any

import pytest

from batchrek.call import Breakers, BreakerSettings, RetryPolicy, TransientRetry
from batchrek.clock import FakeClock
from batchrek.models import S3Ref
from batchrek.prepare import ByteBudget, Fetcher
from tests.call.test_retry import raw_client_error

pytestmark = pytest.mark.anyio

DATA = b"x" * 10_000


class Body:
    def __init__(self, fail: bool) -> None:
        self._fail = fail
        self._left = DATA

    async def read(self, n: int = -1) -> bytes:
        if self._fail:
            raise ConnectionResetError("connection reset by peer")
        chunk = self._left if n < 0 else self._left[:n]
        self._left = self._left[len(chunk) :]
        return chunk

    def close(self) -> None:
        pass


class FlakyS3:
    """GetObject: a SlowDown, then a body cut short, then the object."""

    def __init__(self) -> None:
        self.calls = 0

    async def get_object(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise raw_client_error("SlowDown", 503)
        return {"ContentLength": len(DATA), "Body": Body(fail=self.calls == 2)}


def fetcher(client: FlakyS3, budget: ByteBudget) -> Fetcher:
    clock = FakeClock()

    async def s3_for_region(region: str) -> FlakyS3:
        return client

    return Fetcher(
        s3_for_region=s3_for_region,
        http=None,
        max_bytes=1_000_000,
        allow_http=False,
        http_timeout_s=5,
        budget=budget,
        retry=TransientRetry(
            RetryPolicy(max_attempts=4), Breakers(BreakerSettings(), clock=clock), clock=clock
        ),
    )


async def test_a_download_that_fails_twice_is_retried_to_its_bytes() -> None:
    client = FlakyS3()
    f = fetcher(client, ByteBudget(1_000_000))
    data = await f.s3(S3Ref("b", "k.jpg"), region="us-east-1", known_size=None, lease=f.lease())
    assert (data, client.calls) == (DATA, 3)


async def test_a_failed_attempt_gives_its_reservation_back() -> None:
    budget = ByteBudget(1_000_000)
    f = fetcher(FlakyS3(), budget)
    lease = f.lease()
    assert lease is not None
    await f.s3(S3Ref("b", "k.jpg"), region="us-east-1", known_size=None, lease=lease)
    assert lease.held == len(DATA)
