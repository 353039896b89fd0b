"""A constant-memory latency histogram with bounded relative error.

A run can make ten million calls, so latencies are never stored: each value lands in
one of ~440 logarithmic buckets (DDSketch-style), which keeps every quantile within
``relative_error`` (2 %) of the truth from 0.1 ms to one hour, in a few kilobytes,
with O(1) recording. Values outside that range are clamped into the edge buckets; the
exact minimum and maximum are kept alongside.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["Histogram"]


class Histogram:
    """Log-bucketed histogram of durations in seconds."""

    __slots__ = (
        "_count",
        "_counts",
        "_gamma",
        "_highest",
        "_log_gamma",
        "_lowest",
        "_max",
        "_min",
        "_relative_error",
        "_sum",
    )

    def __init__(
        self,
        *,
        lowest: float = 1e-4,
        highest: float = 3600.0,
        relative_error: float = 0.02,
    ) -> None:
        if not 0 < lowest < highest:
            raise ValueError("need 0 < lowest < highest")
        if not 0 < relative_error < 1:
            raise ValueError("relative_error must be in (0, 1)")
        self._lowest = lowest
        self._highest = highest
        self._relative_error = relative_error
        self._gamma = (1 + relative_error) / (1 - relative_error)
        self._log_gamma = math.log(self._gamma)
        # Bucket i > 0 holds (lowest * g**(i-1), lowest * g**i]; bucket 0 holds <= lowest.
        buckets = math.ceil(math.log(highest / lowest) / self._log_gamma) + 1
        self._counts = [0] * buckets
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = 0.0

    def record(self, seconds: float) -> None:
        """Add one value; O(1), no allocation beyond the float arithmetic."""
        if not seconds > 0:  # also catches NaN
            seconds = 0.0
        if seconds <= self._lowest:
            index = 0
        else:
            index = math.ceil(math.log(seconds / self._lowest) / self._log_gamma)
            if index >= len(self._counts):
                index = len(self._counts) - 1
        self._counts[index] += 1
        self._count += 1
        self._sum += seconds
        if seconds < self._min:
            self._min = seconds
        if seconds > self._max:
            self._max = seconds

    @property
    def count(self) -> int:
        return self._count

    @property
    def sum(self) -> float:
        return self._sum

    @property
    def mean(self) -> float:
        return self._sum / self._count if self._count else 0.0

    @property
    def min(self) -> float:
        return self._min if self._count else 0.0

    @property
    def max(self) -> float:
        return self._max

    @property
    def bucket_count(self) -> int:
        return len(self._counts)

    def quantile(self, q: float) -> float:
        """The value at quantile ``q`` (0..1), within the relative error; 0 when empty."""
        if not self._count:
            return 0.0
        q = min(1.0, max(0.0, q))
        rank = q * (self._count - 1)
        seen = 0
        for index, n in enumerate(self._counts):
            seen += n
            if seen > rank:
                return min(self._max, max(self._min, self._representative(index)))
        return self._max

    def _representative(self, index: int) -> float:
        if index == 0:
            return self._lowest
        # The point of the bucket whose relative distance to both edges is equal.
        return self._lowest * self._gamma**index * 2 / (self._gamma + 1)

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s values into this histogram (same layout required)."""
        if (other._lowest, other._highest, other._relative_error) != (
            self._lowest,
            self._highest,
            self._relative_error,
        ):
            raise ValueError("cannot merge histograms with different layouts")
        counts = self._counts
        for index, n in enumerate(other._counts):
            if n:
                counts[index] += n
        self._count += other._count
        self._sum += other._sum
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)

    def reset(self) -> None:
        counts = self._counts
        for index in range(len(counts)):
            counts[index] = 0
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = 0.0

    def empty_like(self) -> Histogram:
        return Histogram(
            lowest=self._lowest, highest=self._highest, relative_error=self._relative_error
        )

    def summary_ms(self) -> dict[str, Any]:
        """count, sum, mean, p50, p90, p99 and max in milliseconds, for JSON."""
        return {
            "count": self._count,
            "sum": _ms(self._sum),
            "mean": _ms(self.mean),
            "p50": _ms(self.quantile(0.50)),
            "p90": _ms(self.quantile(0.90)),
            "p99": _ms(self.quantile(0.99)),
            "max": _ms(self._max),
        }

    def __repr__(self) -> str:
        return (
            f"Histogram(count={self._count}, p50={self.quantile(0.5):.6f}, "
            f"p99={self.quantile(0.99):.6f}, max={self._max:.6f})"
        )


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)
