"""Latency, quotas and faults: the service's bad days, reproducible by seed.

Every request draws the same four numbers from one seeded generator, in arrival
order, whatever the settings: so a run with a given seed and request sequence meets
the same delays and faults every time. Quotas are token buckets per operation
(burst = one second of quota), as the service's "Provisioned Rate exceeded." is.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from batchrek.emulator.apierrors import ServiceError
from batchrek.emulator.settings import EmulatorSettings

__all__ = ["DROP", "Decision", "LoadModel", "TokenBucket"]

DROP = "dropped"
_SLOW_DOWN = "Slow down; sudden increase in rate of requests"


class TokenBucket:
    """``rate`` tokens a second, holding at most ``max(1, rate)`` (one second's worth)."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate) if rate > 0 else 0.0
        self.tokens = self.capacity
        self.updated = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def retune(self, rate: float, now: float) -> None:
        """Change the rate mid-run, keeping the tokens already earned (up to the new cap)."""
        self._refill(now)
        self.rate = rate
        self.capacity = max(1.0, rate) if rate > 0 else 0.0
        self.tokens = min(self.tokens, self.capacity)

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.updated = now
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate}, tokens={self.tokens:.2f}/{self.capacity:.2f})"


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens to one request: wait ``delay_s``, then answer, fail or drop."""

    delay_s: float
    error: ServiceError | None = None
    drop: bool = False


class LoadModel:
    def __init__(
        self, settings: EmulatorSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._settings = settings
        self._rng = random.Random(settings.seed)
        self._buckets: dict[str, TokenBucket] = {}

    def configure(self, settings: EmulatorSettings) -> None:
        now = self._clock()
        if settings.seed != self._settings.seed:
            self._rng.seed(settings.seed)
        self._settings = settings
        for op, bucket in list(self._buckets.items()):
            rate = settings.quota_for(op)
            if rate is None:
                del self._buckets[op]
            else:
                bucket.retune(rate, now)

    def reset(self) -> None:
        """Back to the seed's first draw, with full buckets."""
        self._rng.seed(self._settings.seed)
        self._buckets.clear()

    def decide(self, operation: str) -> Decision:
        s, rng = self._settings, self._rng
        u_drop, u_throttle, u_fault = rng.random(), rng.random(), rng.random()
        delay = self._latency(rng) / 1000.0
        if not self._admit(operation):
            return Decision(delay, _quota_error())
        if u_drop < s.drop_rate:
            return Decision(delay, drop=True)
        if u_throttle < s.throttle_rate:
            return Decision(delay, ServiceError("ThrottlingException", _SLOW_DOWN))
        if u_fault < s.fault_rate:
            return Decision(
                delay, ServiceError("InternalServerError", "Internal server error", 500)
            )
        return Decision(delay)

    def _latency(self, rng: random.Random) -> float:
        mean, spread = self._settings.latency_ms, self._settings.latency_jitter_ms
        # Always one draw, so changing latency never shifts later fault draws.
        u = rng.random()
        if mean <= 0:
            return 0.0
        if spread <= 0:
            return mean
        # A gamma with this mean and standard deviation: positive, with a long right tail.
        shape = (mean / spread) ** 2
        return random.Random(u).gammavariate(shape, spread * spread / mean)

    def _admit(self, operation: str) -> bool:
        rate = self._settings.quota_for(operation)
        if rate is None:
            return True
        now = self._clock()
        bucket = self._buckets.get(operation)
        if bucket is None:
            bucket = self._buckets[operation] = TokenBucket(rate, now)
        return bucket.take(now)

    def __repr__(self) -> str:
        return f"LoadModel(seed={self._settings.seed}, buckets={self._buckets})"


def _quota_error() -> ServiceError:
    return ServiceError("ProvisionedThroughputExceededException", "Provisioned Rate exceeded.")
