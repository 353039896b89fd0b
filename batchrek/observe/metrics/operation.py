"""One operation's counters, owned and updated by ``RunMetrics``.

Bounded like the rest of the metrics: error-code counters keep at most ``MAX_CODES``
keys (``bump``), the settled rate is the median of a fixed window of ticks.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from batchrek.observe.histogram import Histogram
from batchrek.observe.metrics.timeline import per_second

__all__ = ["MAX_CODES", "OpStats", "bump"]

MAX_CODES = 64  # distinct error codes kept per counter; the rest count as "other"
_SETTLED_TICKS = 60  # the "settled" rate: the median over the last minute


def bump(counter: dict[str, int], key: str, n: int = 1) -> None:
    """Add ``n`` to ``counter[key]``; a new key past ``MAX_CODES`` counts as "other"."""
    if key not in counter and len(counter) >= MAX_CODES:
        key = "other"
    counter[key] = counter.get(key, 0) + n


class OpStats:
    """Everything counted for one operation; mutable, owned by RunMetrics."""

    __slots__ = (
        "attempts",
        "busy_s",
        "ceiling",
        "deduplicated",
        "end_to_end",
        "failed",
        "failed_by_code",
        "in_flight",
        "input",
        "latency",
        "ok",
        "outcomes",
        "rate",
        "rate_ticks",
        "recent_rates",
        "requests",
        "retries",
        "retries_by_code",
        "skipped",
        "throttled",
        "token_wait",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.in_flight = 0
        self.busy_s = 0.0
        self.throttled = 0
        self.outcomes: dict[str, int] = {}
        self.retries = 0
        self.retries_by_code: dict[str, int] = {}
        self.ok = 0
        self.failed = 0
        self.failed_by_code: dict[str, int] = {}
        self.skipped = 0
        self.deduplicated = 0
        self.attempts = 0
        self.input: dict[str, int] = {}
        self.latency = Histogram()  # service time of successful attempts
        self.token_wait = Histogram()
        self.end_to_end = Histogram()
        self.rate: float | None = None
        self.ceiling: float | None = None
        self.recent_rates: deque[float] = deque(maxlen=_SETTLED_TICKS)
        self.rate_ticks = 0  # ticks with a rate, ever

    def settled_rate(self) -> float | None:
        """The rate held lately: the median of the last minute of ticks, or of a short
        run's second half (its first half is --rate auto's search). A median, so the
        probes past the quota and the cuts after them do not pull it about."""
        if not self.recent_rates:
            return self.rate
        window = list(self.recent_rates)
        if self.rate_ticks < 2 * _SETTLED_TICKS:
            window = window[len(window) // 2 :]
        window.sort()
        return round(window[len(window) // 2], 3)

    def summary(self, elapsed: float) -> dict[str, Any]:
        """This operation's part of the ``--metrics-out`` document."""
        return {
            "requests": self.requests,
            "ok": self.ok,
            "failed": self.failed,
            "skipped": self.skipped,
            "deduplicated": self.deduplicated,
            "retries": self.retries,
            "throttled": self.throttled,
            "attempts": self.attempts,
            "throughput_per_s": per_second(self.ok + self.failed, elapsed),
            "failed_by_code": dict(self.failed_by_code),
            "retries_by_code": dict(self.retries_by_code),
            "attempt_outcomes": dict(self.outcomes),
            "input": dict(self.input),
            "latency_ms": {**self.latency.summary_ms(), "busy_s": round(self.busy_s, 3)},
            "token_wait_ms": self.token_wait.summary_ms(),
            "end_to_end_ms": self.end_to_end.summary_ms(),
            "rate": self.settled_rate(),
            "rate_last": None if self.rate is None else round(self.rate, 3),
            "rate_ceiling": self.ceiling,
        }
