"""The rate limit of one operation, fixed or found automatically.

The quota is per operation and per account, so each operation has its own token
bucket; with ``--rate auto`` an ``AdaptiveRate`` drives that bucket from what the
service accepts. A sharded run passes its share of the starting rate.
"""

from __future__ import annotations

from batchrek.call.adaptive import AdaptiveRate
from batchrek.call.ratelimit import TokenBucket
from batchrek.clock import Clock

__all__ = ["RateControl"]


class RateControl:
    """``fixed_tps``: the rate to hold (None: find it, starting from ``start_tps``)."""

    def __init__(self, *, fixed_tps: float | None, start_tps: float, clock: Clock) -> None:
        start = fixed_tps if fixed_tps is not None else start_tps
        self.bucket = TokenBucket(start, clock=clock)
        # The controller drives the bucket's rate and its pauses itself.
        self.adaptive = (
            AdaptiveRate(start, clock=clock, target=self.bucket) if fixed_tps is None else None
        )

    def on_success(self) -> None:
        if self.adaptive is not None:
            self.adaptive.on_success()

    def on_throttle(self, *, soft: bool) -> None:
        """``soft``: a "slow down" that is not the quota (ThrottlingException) is weak
        evidence; only ProvisionedThroughputExceeded says where the quota is."""
        if self.adaptive is not None:
            self.adaptive.on_throttle(soft=soft)

    @property
    def rate(self) -> float | None:
        """The live rate; RunMetrics averages the last minute of ticks itself (the
        controller's own settled_rate would smooth it twice)."""
        return self.bucket.rate

    @property
    def ceiling(self) -> float | None:
        return self.adaptive.ceiling if self.adaptive is not None else None

    def __repr__(self) -> str:
        mode = "auto" if self.adaptive is not None else "fixed"
        return f"RateControl({mode}, rate={self.rate!r})"
