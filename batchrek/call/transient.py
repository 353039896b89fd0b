"""Calls behind a breaker, and the transient retry of downloads and part uploads.

``guarded`` is one call through an endpoint's circuit breaker: it waits while the
breaker is open, reports the outcome, and when an outage failure finds the breaker
open it waits and calls again, so the outage does not spend the caller's attempts.

``TransientRetry`` is what the other stages get for their own I/O: S3 GetObject and
https GET of sources (``prepare.Fetcher``) and the part uploads of an S3 output
(``output.S3PartSink``). It retries what ``classify`` calls retryable (SlowDown,
5xx, connection errors, timeouts) with the call policy's jittered back-off
(``call_with_retry``, tenacity), behind the endpoint's breaker, and re-raises the
last exception unchanged when it gives up, so the caller's own error boundary
translates it as before. A run-stopping error (``errors.STOPS_THE_RUN``: an outage
past ``outage_timeout_s``, or the output failed) propagates as itself.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

from batchrek.call.breaker import Breakers, CircuitBreaker
from batchrek.call.retry import RetryPolicy, call_with_retry, classify, is_outage
from batchrek.clock import Clock
from batchrek.errors import STOPS_THE_RUN

__all__ = ["TransientRetry", "guarded"]

T = TypeVar("T")


async def guarded(breaker: CircuitBreaker, fn: Callable[[], Awaitable[T]]) -> T:
    """``fn()`` through ``breaker`` (see the module doc)."""
    while True:
        probe = await breaker.admit()
        try:
            value = await fn()
        except STOPS_THE_RUN:
            breaker.abandoned(probe=probe)
            raise
        except Exception as exc:
            info = classify(exc)
            if not is_outage(info):
                breaker.succeeded(probe=probe)
            elif breaker.failed(info, probe=probe):
                continue
            raise
        except BaseException:
            breaker.abandoned(probe=probe)
            raise
        breaker.succeeded(probe=probe)
        return value


class _NoRetry(Exception):
    """Ends the retry loop at once (``classify`` reads it as permanent)."""


class TransientRetry:
    """Retries one endpoint's I/O on transient errors (see the module doc)."""

    def __init__(
        self,
        policy: RetryPolicy,
        breakers: Breakers,
        *,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self.breakers = breakers
        self.retries = 0  # failed attempts that were retried
        self._clock = clock
        self._rng = rng

    async def __call__(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        endpoint: str,
        name: str | None = None,
        fatal: bool = True,
    ) -> T:
        """``fn()``, retried; ``endpoint`` keys the breaker, ``name`` is how messages
        call it; ``fatal=False`` for a URL host (see ``call.breaker``)."""
        breaker = self.breakers.get(endpoint, name, fatal=fatal)
        last: list[Exception] = []

        async def attempt() -> T:
            try:
                return await guarded(breaker, fn)
            except Exception as exc:
                last[:] = [exc]
                if exc is breaker.gave_up:  # a host past its outage: no retry, fail now
                    raise _NoRetry from exc
                raise

        def counted(_n: int, _info: object, _sleep: float) -> None:
            self.retries += 1

        outcome = await call_with_retry(
            attempt, self.policy, clock=self._clock, on_retry=counted, rng=self._rng
        )
        if outcome.error is not None:
            raise last[0]
        return cast(T, outcome.value)

    def __repr__(self) -> str:
        return f"TransientRetry({self.policy}, retries={self.retries}, {self.breakers!r})"
