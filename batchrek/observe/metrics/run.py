"""Run metrics: counters, latency histograms, a bounded timeline and the summary.

The pipeline calls the recording methods from the event loop; each is O(1) and keeps
no per-item state, so a run of ten million images uses the same memory as a run of
ten. Everything the outside world sees (the ``--metrics-out`` JSON, the progress
display, Prometheus) is derived from :meth:`RunMetrics.summary` or
:meth:`RunMetrics.snapshot`, never from the data path.

Units: counts are (item, operation) *pairs* unless named ``items``; durations are
recorded in seconds and reported in milliseconds (``*_ms``).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from batchrek.clock import Clock
from batchrek.models import Result
from batchrek.observe.histogram import Histogram
from batchrek.observe.metrics.cpu import CpuUsage, LoopCpu
from batchrek.observe.metrics.findings import Findings
from batchrek.observe.metrics.operation import OpStats, bump
from batchrek.observe.metrics.source import SourceStats
from batchrek.observe.metrics.timeline import MAX_TIMELINE_POINTS, Timeline, per_second
from batchrek.observe.verdict import tuning_verdict

__all__ = ["RunMetrics"]

_AT_MAX = 0.9  # in flight at 90 % of --concurrency (rounded up) counts as "at the cap"


class RunMetrics:
    """The one place a run's numbers accumulate.

    Every duration is read from ``clock``. ``wall`` and ``cpu`` are seams for what a
    monotonic clock cannot give, and time nothing: ``wall`` is read once, at the
    start, to turn clock readings into Unix timestamps for display and export
    (``started_unix``, ``last_success_unix`` for Prometheus); ``cpu`` is process CPU
    time, sampled once per tick for the timeline and the client-CPU verdict (measured,
    never inferred); ``loop`` is the event loop thread's (run, wait-for-a-core)
    seconds (``LoopCpu``). Tests pass fakes.
    """

    def __init__(
        self,
        clock: Clock,
        operations: Sequence[str],
        *,
        # Not clock reads for durations (see the class docstring): a Unix timestamp for
        # display, and process CPU time.
        wall: Callable[[], float] = time.time,
        cpu: Callable[[], float] = time.process_time,
        loop: Callable[[], tuple[float, float]] | None = None,
        max_points: int = MAX_TIMELINE_POINTS,
    ) -> None:
        self.clock = clock
        self.operations = tuple(operations)
        self._start = clock.monotonic()
        self._start_wall = wall()
        self._cpu = CpuUsage(cpu, loop or LoopCpu())
        self._end: float | None = None
        self._ops = {op: OpStats() for op in self.operations}
        self._timeline = Timeline(self.operations, max_points=max_points)
        # (t, pairs done, images done) per tick: the display's rates over ~10 s
        self._recent: deque[tuple[float, int, int]] = deque(maxlen=11)
        self.items = 0
        self.manifest_problems = 0
        self.listing_skipped_by: dict[str, int] = {}
        self.shard_filtered_items = 0
        self.total_items: int | None = None
        self.concurrency_limit: int | None = None  # the live in-flight cap
        self.concurrency: int | None = None  # --concurrency: the cap's maximum
        self.workers: int | None = None  # worker tasks (each one item at a time)
        self.identity: dict[str, Any] = {}
        self.images_done = 0
        self._source = SourceStats()
        self._end_to_end = Histogram()
        self.source_budget: dict[str, int] = {}
        self._last_ok: float | None = None
        self._ticks = 0
        self._at_cap_ticks = 0
        self._at_max_ticks = 0
        self._last_tick_t = 0.0
        self._failed_retryable = 0
        self._output: dict[str, Any] = {}
        self._token_wait_ticked = 0.0
        self.findings = Findings()  # warnings, outages, why it stopped

    # -- the manifest side ---------------------------------------------------------

    def item_read(self) -> None:
        self.items += 1

    def item_finished(self, n: int = 1) -> None:
        """An image whose every operation is done (called, reused, or resumed)."""
        self.images_done += n

    def manifest_problem(self) -> None:
        self.manifest_problems += 1

    def listing_skipped(self, reason: str, n: int = 1) -> None:
        """Entries a folder, prefix or inventory listing left out, by reason (not an
        image extension, hidden, a symlink out of the root, not a regular file ...)."""
        self.listing_skipped_by[reason] = self.listing_skipped_by.get(reason, 0) + n

    def skipped(self, op: str, n: int = 1) -> None:
        """Pairs already done in an earlier run (resume)."""
        self._op(op).skipped += n

    def deduplicated(self, op: str, n: int = 1) -> None:
        self._op(op).deduplicated += n

    def shard_filtered(self, n: int = 1) -> None:
        """Items that belong to another shard (not this shard's work: the total is
        this shard's share, so they are not counted as done either)."""
        self.shard_filtered_items += n

    def observe_read_wait(self, seconds: float) -> None:
        self._source.read_wait.record(seconds)

    def observe_prepare(self, seconds: float, *, transcoded: bool, mode: str) -> None:
        self._source.prepared(seconds, transcoded=transcoded, mode=mode)

    # -- the call side -------------------------------------------------------------

    def observe_token_wait(self, op: str, seconds: float) -> None:
        self._op(op).token_wait.record(seconds)

    def attempt_started(self, op: str) -> None:
        stats = self._op(op)
        stats.requests += 1
        stats.in_flight += 1

    def attempt_finished(self, op: str, seconds: float, *, outcome: str) -> None:
        """``outcome``: "ok", "throttled", or the error code of a failed attempt."""
        stats = self._op(op)
        stats.in_flight -= 1
        stats.busy_s += seconds
        bump(stats.outcomes, outcome)
        if outcome == "ok":
            stats.latency.record(seconds)
            self._timeline.window.record(seconds)
        elif outcome == "throttled":
            stats.throttled += 1

    def retried(self, op: str, code: str) -> None:
        stats = self._op(op)
        stats.retries += 1
        bump(stats.retries_by_code, code)

    def record_result(self, result: Result, end_to_end_s: float) -> None:
        stats = self._op(result.operation)
        if result.status == "ok":
            stats.ok += 1
            self._last_ok = self.clock.monotonic()
        else:
            stats.failed += 1
            bump(stats.failed_by_code, result.error.code if result.error else "Unknown")
            if result.error is not None and result.error.retryable:
                self._failed_retryable += 1  # a rerun redoes it
        stats.attempts += result.attempts
        bump(stats.input, result.input)
        stats.end_to_end.record(end_to_end_s)
        self._end_to_end.record(end_to_end_s)

    # -- the controls ----------------------------------------------------------------

    def set_rate(self, op: str, rate: float | None, *, ceiling: float | None = None) -> None:
        """The rate limiter's current rate (None = unlimited) and, if known, its ceiling."""
        stats = self._op(op)
        stats.rate = rate
        if ceiling is not None:
            stats.ceiling = ceiling

    def set_concurrency_limit(self, n: int) -> None:
        self.concurrency_limit = n

    def set_capacity(self, *, concurrency: int, workers: int) -> None:
        """What exists: the in-flight cap's maximum (--concurrency) and the worker
        tasks. The verdict never counts more workers than these."""
        self.concurrency = concurrency
        self.workers = workers

    def describe(
        self, identity: Mapping[str, Any], *, output: Mapping[str, Any] | None = None
    ) -> None:
        """The run's identity (version, manifest, output, settings ...): the ``run``
        section of the summary, so runs can be told apart and compared; ``output``:
        {path, resumed, pairs_done_before}, what the output held when the run began."""
        self.identity = dict(identity)
        self._output = dict(output or {})

    def set_total(self, n: int | None) -> None:
        """The manifest's size in items, when known; the ETA needs it."""
        self.total_items = n

    def set_source_budget(self, *, total: int, peak: int, waits: int) -> None:
        """The byte budget over sources held at once: its size, the most ever held,
        and how many sources had to wait for room."""
        self.source_budget = {"bytes": total, "peak_bytes": peak, "waits": waits}

    def finish(self) -> None:
        """Freeze the elapsed time, so every later summary agrees."""
        if self._end is None:
            self._end = self.clock.monotonic()

    # -- sampling ----------------------------------------------------------------------

    def tick(self) -> None:
        """One per-second sample; the pipeline calls this once a second."""
        t = self.elapsed
        in_flight = self.in_flight
        self._ticks += 1
        if self.concurrency_limit and in_flight >= self.concurrency_limit:
            self._at_cap_ticks += 1
        if self.concurrency and in_flight >= math.ceil(_AT_MAX * self.concurrency):
            self._at_max_ticks += 1
        rates: list[float | None] = []
        for op in self.operations:
            stats = self._ops[op]
            rates.append(stats.rate)
            if stats.rate is not None:
                stats.recent_rates.append(stats.rate)
                stats.rate_ticks += 1
        done = self.done
        self._recent.append((t, done, self.images_done))
        self._timeline.add(
            t=t,
            done=done,
            ok=self._sum("ok"),
            failed=self._sum("failed"),
            requests=self._sum("requests"),
            throttled=self._sum("throttled"),
            in_flight=in_flight,
            rates=rates,
            cpu_s=self._cpu.process_s(),
            loop_s=sum(self._cpu.loop_s()),
            token_wait_s=self._token_wait_in_ticks(t),
            limit=self.concurrency_limit,
        )

    # -- reading -----------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        end = self._end if self._end is not None else self.clock.monotonic()
        return max(0.0, end - self._start)

    @property
    def in_flight(self) -> int:
        return sum(s.in_flight for s in self._ops.values())

    @property
    def done(self) -> int:
        """Pairs finished, however: called, resumed or deduplicated."""
        return sum(s.ok + s.failed + s.skipped + s.deduplicated for s in self._ops.values())

    @property
    def total(self) -> int | None:
        """Pairs the run will finish, when the manifest size is known."""
        if self.total_items is None:
            return None
        return self.total_items * len(self.operations)

    @property
    def timeline(self) -> Timeline:
        return self._timeline

    def snapshot(self) -> dict[str, Any]:
        """A cheap view for the progress display and periodic log lines: pairs
        (item, operation) and images counted apart, rates over the last ~10 s."""
        t = self.elapsed
        done, images = self.done, self.images_done
        if len(self._recent) >= 2 and self._recent[-1][0] > self._recent[0][0]:
            (t0, d0, i0), (t1, d1, i1) = self._recent[0], self._recent[-1]
            per_s, images_per_s = (d1 - d0) / (t1 - t0), (i1 - i0) / (t1 - t0)
        else:
            per_s = done / t if t > 0 else 0.0
            images_per_s = images / t if t > 0 else 0.0
        total = self.total
        eta = None
        if total is not None and per_s > 0:
            eta = round(max(0, total - done) / per_s, 1)
        return {
            "t": round(t, 3),
            "done": done,
            "total": total,
            "images_done": images,
            "images_total": self.total_items,
            "ok": self._sum("ok"),
            "failed": self._sum("failed"),
            "skipped": self._sum("skipped"),
            "throttled": self._sum("throttled"),
            "retries": self._sum("retries"),
            "requests": self._sum("requests"),
            "in_flight": self.in_flight,
            "concurrency_limit": self.concurrency_limit,
            "per_s": round(per_s, 3),
            "images_per_s": round(images_per_s, 3),
            "rate": {op: self._ops[op].rate for op in self.operations},
            "eta_s": eta,
        }

    def summary(self) -> dict[str, Any]:
        """The ``--metrics-out`` document (see the module docstring for units)."""
        elapsed = self.elapsed
        latency = Histogram()
        token_wait = Histogram()
        for stats in self._ops.values():
            latency.merge(stats.latency)
            token_wait.merge(stats.token_wait)
        ok, failed = self._sum("ok"), self._sum("failed")
        failed_by_code: dict[str, int] = {}
        input_modes: dict[str, int] = {"bytes": 0, "s3object": 0}
        for stats in self._ops.values():
            for code, n in stats.failed_by_code.items():
                failed_by_code[code] = failed_by_code.get(code, 0) + n
            for mode, n in stats.input.items():
                input_modes[mode] = input_modes.get(mode, 0) + n
        last_ok = (
            None
            if self._last_ok is None
            else round(self._start_wall + (self._last_ok - self._start), 3)
        )
        busy_s = sum(s.busy_s for s in self._ops.values())
        summary: dict[str, Any] = {
            "run": self._run_section(elapsed),
            "items": self.items,
            "images_done": self.images_done,
            "total_items": self.total_items,
            "requests": self._sum("requests"),
            "billed": sum(s.outcomes.get("ok", 0) for s in self._ops.values()),  # answered
            "ok": ok,
            "failed": failed,
            "failed_retryable": self._failed_retryable,
            "skipped": self._sum("skipped"),
            "deduplicated": self._sum("deduplicated"),
            "shard_filtered": self.shard_filtered_items,
            "manifest_problems": self.manifest_problems,
            "listing_skipped": dict(sorted(self.listing_skipped_by.items())),
            "retries": self._sum("retries"),
            "throttled": self._sum("throttled"),
            "attempts": self._sum("attempts"),
            "elapsed_s": round(elapsed, 3),
            "throughput_per_s": per_second(ok + failed, elapsed),
            "latency_ms": latency.summary_ms(),
            "end_to_end_ms": self._end_to_end.summary_ms(),
            "token_wait_ms": {**token_wait.summary_ms(), "seconds": round(token_wait.sum, 3)},
            "failed_by_code": failed_by_code,
            "input": input_modes,
            **self._source.summary(),
            "concurrency": {
                "max": self.concurrency,
                "workers": self.workers,
                "limit": self.concurrency_limit,
                "in_flight_mean": round(busy_s / elapsed, 3) if elapsed > 0 else 0.0,
                "at_max_share": self._share(self._at_max_ticks),
                "at_limit_share": self._share(self._at_cap_ticks),
            },
            "service_busy_s": round(busy_s, 3),
            **self._cpu.summary(),
            "source_budget": dict(self.source_budget),
            "started_unix": round(self._start_wall, 3),
            "last_success_unix": last_ok,
            "by_operation": {op: stats.summary(elapsed) for op, stats in self._ops.items()},
            "timeline": self._timeline.as_dicts(),
            "output": dict(self._output),
            **self.findings.summary(),
        }
        summary["verdict"] = tuning_verdict(summary).as_dict()
        return summary

    def _run_section(self, elapsed: float) -> dict[str, Any]:
        started = datetime.fromtimestamp(self._start_wall, UTC)
        return {
            **self.identity,
            "started": started.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "duration_s": round(elapsed, 3),
        }

    def _token_wait_in_ticks(self, t: float) -> float:
        """Token waiting for the timeline. A wait is recorded when it ends, so a tick
        can receive waits that began earlier; no tick gets more than the workers that
        exist could have waited in it (the rest carries to the next)."""
        total = sum(s.token_wait.sum for s in self._ops.values())
        dt = t - self._last_tick_t
        self._last_tick_t = t
        room = self.workers * dt if self.workers else float("inf")
        self._token_wait_ticked += min(total - self._token_wait_ticked, room)
        return self._token_wait_ticked

    def _op(self, op: str) -> OpStats:
        stats = self._ops.get(op)
        if stats is None:  # an operation the run did not announce: count it anyway
            stats = self._ops[op] = OpStats()
        return stats

    def _sum(self, name: str) -> int:
        return sum(getattr(s, name) for s in self._ops.values())

    def _share(self, ticks: int) -> float:
        return round(ticks / self._ticks, 4) if self._ticks else 0.0

    def __repr__(self) -> str:
        return (
            f"RunMetrics(elapsed={self.elapsed:.1f}s, done={self.done}, "
            f"in_flight={self.in_flight}, points={len(self._timeline)})"
        )
