"""The run's timeline: one sample per tick, in a bounded number of points.

``RunMetrics.tick`` feeds it once a second; ``as_dicts`` is the ``timeline`` of the
``--metrics-out`` JSON and of the report. Merging neighbours when full keeps memory
flat however long the run (see :class:`Timeline`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from batchrek.observe.histogram import Histogram

__all__ = ["MAX_TIMELINE_POINTS", "Timeline", "TimelinePoint", "per_second"]

MAX_TIMELINE_POINTS = 3600


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    """One timeline sample; counters are cumulative, gauges are means over ``ticks``."""

    t: float
    ticks: int
    done: int
    ok: int
    failed: int
    requests: int
    throttled: int
    in_flight: float
    rates: tuple[float | None, ...]
    p50_s: float | None
    p99_s: float | None
    # Cumulative seconds (counters): process CPU, and time workers spent waiting for
    # a rate token; per second they are cores used and workers waiting.
    cpu_s: float = 0.0
    loop_s: float = 0.0  # the event loop thread: running or waiting for a core
    token_wait_s: float = 0.0
    limit: float | None = None  # the in-flight cap (a gauge)


def _merge_points(a: TimelinePoint, b: TimelinePoint) -> TimelinePoint:
    """Two neighbours become one: counters from the later, gauges averaged by ticks."""
    n = a.ticks + b.ticks

    def mean(x: float | None, y: float | None) -> float | None:
        if x is None or y is None:
            return y if x is None else x
        return (x * a.ticks + y * b.ticks) / n

    p99 = b.p99_s if a.p99_s is None else a.p99_s if b.p99_s is None else max(a.p99_s, b.p99_s)
    return TimelinePoint(
        t=b.t,
        ticks=n,
        done=b.done,
        ok=b.ok,
        failed=b.failed,
        requests=b.requests,
        throttled=b.throttled,
        in_flight=(a.in_flight * a.ticks + b.in_flight * b.ticks) / n,
        rates=tuple(mean(x, y) for x, y in zip(a.rates, b.rates, strict=True)),
        p50_s=mean(a.p50_s, b.p50_s),
        p99_s=p99,  # the worse second of the two: a p99 must not be averaged away
        cpu_s=b.cpu_s,
        loop_s=b.loop_s,
        token_wait_s=b.token_wait_s,
        limit=mean(a.limit, b.limit),
    )


class Timeline:
    """Per-tick samples in at most ``max_points`` points.

    When full, neighbours merge pairwise and each later point covers twice as many
    ticks, so a week-long run keeps the same resolution budget as a minute-long one.
    ``window`` collects the service latencies of the point being built.
    """

    def __init__(self, operations: Sequence[str], *, max_points: int = MAX_TIMELINE_POINTS):
        if max_points < 2:
            raise ValueError("max_points must be at least 2")
        self.operations = tuple(operations)
        self.max_points = max_points
        self.window = Histogram()
        self.stride = 1
        self._points: list[TimelinePoint] = []
        self._ticks = 0
        self._in_flight_sum = 0.0
        self._rate_sums = [0.0] * len(self.operations)
        self._rate_counts = [0] * len(self.operations)
        self._limit_sum = 0.0
        self._limit_count = 0

    def __len__(self) -> int:
        return len(self._points)

    @property
    def points(self) -> tuple[TimelinePoint, ...]:
        return tuple(self._points)

    def add(
        self,
        *,
        t: float,
        done: int,
        ok: int,
        failed: int,
        requests: int,
        throttled: int,
        in_flight: int,
        rates: Sequence[float | None],
        cpu_s: float = 0.0,
        loop_s: float = 0.0,
        token_wait_s: float = 0.0,
        limit: int | None = None,
    ) -> None:
        self._ticks += 1
        self._in_flight_sum += in_flight
        if limit is not None:
            self._limit_sum += limit
            self._limit_count += 1
        for index, rate in enumerate(rates):
            if rate is not None:
                self._rate_sums[index] += rate
                self._rate_counts[index] += 1
        if self._ticks < self.stride:
            return
        window = self.window
        self._points.append(
            TimelinePoint(
                t=t,
                ticks=self._ticks,
                done=done,
                ok=ok,
                failed=failed,
                requests=requests,
                throttled=throttled,
                in_flight=self._in_flight_sum / self._ticks,
                rates=tuple(
                    s / c if c else None
                    for s, c in zip(self._rate_sums, self._rate_counts, strict=True)
                ),
                p50_s=window.quantile(0.5) if window.count else None,
                p99_s=window.quantile(0.99) if window.count else None,
                cpu_s=cpu_s,
                loop_s=loop_s,
                token_wait_s=token_wait_s,
                limit=self._limit_sum / self._limit_count if self._limit_count else None,
            )
        )
        window.reset()
        self._limit_sum = 0.0
        self._limit_count = 0
        self._ticks = 0
        self._in_flight_sum = 0.0
        self._rate_sums = [0.0] * len(self.operations)
        self._rate_counts = [0] * len(self.operations)
        if len(self._points) >= self.max_points:
            self._downsample()

    def _downsample(self) -> None:
        points = self._points
        merged = [_merge_points(points[i], points[i + 1]) for i in range(0, len(points) - 1, 2)]
        if len(points) % 2:
            merged.append(points[-1])
        self._points = merged
        self.stride *= 2

    def as_dicts(self) -> list[dict[str, Any]]:
        """JSON rows; ``*_per_s`` are rates over each point's own interval, as are
        ``cpu_cores`` (process CPU seconds per second), ``loop_busy`` (the share of
        the interval the event loop thread ran or waited for a core) and
        ``token_wait_workers``
        (seconds spent waiting for a rate token per second: the mean number of
        workers waiting)."""
        rows: list[dict[str, Any]] = []
        prev_t, prev_ok, prev_done, prev_req, prev_thr = 0.0, 0, 0, 0, 0
        prev_cpu = prev_wait = prev_loop = 0.0
        for p in self._points:
            dt = p.t - prev_t
            rows.append(
                {
                    "t": round(p.t, 3),
                    "done": p.done,
                    "ok": p.ok,
                    "failed": p.failed,
                    "requests": p.requests,
                    "throttled": p.throttled,
                    "in_flight": round(p.in_flight, 3),
                    "rate": {
                        op: None if r is None else round(r, 3)
                        for op, r in zip(self.operations, p.rates, strict=True)
                    },
                    "p50_ms": None if p.p50_s is None else round(p.p50_s * 1000, 3),
                    "p99_ms": None if p.p99_s is None else round(p.p99_s * 1000, 3),
                    "ok_per_s": per_second(p.ok - prev_ok, dt),
                    "done_per_s": per_second(p.done - prev_done, dt),
                    "requests_per_s": per_second(p.requests - prev_req, dt),
                    "throttled_per_s": per_second(p.throttled - prev_thr, dt),
                    "cpu_cores": _ratio(p.cpu_s - prev_cpu, dt),
                    "loop_busy": min(1.0, _ratio(p.loop_s - prev_loop, dt)),
                    "token_wait_workers": _ratio(p.token_wait_s - prev_wait, dt),
                    "concurrency_limit": None if p.limit is None else round(p.limit, 3),
                }
            )
            prev_cpu, prev_wait, prev_loop = p.cpu_s, p.token_wait_s, p.loop_s
            prev_t, prev_ok, prev_done, prev_req, prev_thr = (
                p.t,
                p.ok,
                p.done,
                p.requests,
                p.throttled,
            )
        return rows


def _ratio(seconds: float, dt: float) -> float:
    return round(max(0.0, seconds) / dt, 3) if dt > 0 else 0.0


def per_second(n: int, dt: float) -> float:
    """``n`` over ``dt`` seconds, rounded for the JSON; 0 for an empty interval."""
    return round(n / dt, 3) if dt > 0 else 0.0
