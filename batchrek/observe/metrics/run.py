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

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from batchrek.clock import Clock
from batchrek.models import Result
from batchrek.observe.histogram import Histogram
from batchrek.observe.metrics.operation import OpStats, bump
from batchrek.observe.metrics.timeline import MAX_TIMELINE_POINTS, Timeline, per_second
from batchrek.observe.verdict import VerdictInputs, tuning_verdict

__all__ = ["RunMetrics"]

_AT_CEILING = 0.98  # a rate within 2 % of its ceiling counts as "at the ceiling"


class RunMetrics:
    """The one place a run's numbers accumulate.

    Every duration is read from ``clock``. ``wall`` and ``cpu`` are seams for what a
    monotonic clock cannot give, and time nothing: ``wall`` is read once, at the
    start, to turn clock readings into Unix timestamps for display and export
    (``started_unix``, ``last_success_unix`` for Prometheus); ``cpu`` is process CPU
    time for the client-CPU verdict. Tests pass fakes for both.
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
        max_points: int = MAX_TIMELINE_POINTS,
    ) -> None:
        self.clock = clock
        self.operations = tuple(operations)
        self._wall = wall
        self._cpu = cpu
        self._start = clock.monotonic()
        self._start_wall = wall()
        self._start_cpu = cpu()
        self._end: float | None = None
        self._ops = {op: OpStats() for op in self.operations}
        self._timeline = Timeline(self.operations, max_points=max_points)
        self._recent: deque[tuple[float, int]] = deque(maxlen=11)  # (t, done) per tick
        self.items = 0
        self.manifest_problems = 0
        self.listing_skipped_by: dict[str, int] = {}
        self.shard_filtered_items = 0
        self.total_items: int | None = None
        self.concurrency_limit: int | None = None
        self._prepare = Histogram()
        self._prepared_by_mode: dict[str, int] = {}
        self._transcodes = 0
        self._transcode_s = 0.0
        self._read_wait = Histogram()
        self._end_to_end = Histogram()
        self.source_budget: dict[str, int] = {}
        self._last_ok: float | None = None
        self._ticks = 0
        self._at_cap_ticks = 0

    # -- the manifest side ---------------------------------------------------------

    def item_read(self) -> None:
        self.items += 1

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
        """Items that belong to another shard; they count as done for the ETA."""
        self.shard_filtered_items += n

    def observe_read_wait(self, seconds: float) -> None:
        self._read_wait.record(seconds)

    def observe_prepare(self, seconds: float, *, transcoded: bool, mode: str) -> None:
        self._prepare.record(seconds)
        bump(self._prepared_by_mode, mode)
        if transcoded:
            self._transcodes += 1
            self._transcode_s += seconds

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
        rates: list[float | None] = []
        for op in self.operations:
            stats = self._ops[op]
            rates.append(stats.rate)
            if stats.rate is not None:
                stats.recent_rates.append(stats.rate)
                if stats.ceiling and stats.rate >= _AT_CEILING * stats.ceiling:
                    stats.at_ceiling_ticks += 1
        done = self.done
        self._recent.append((t, done))
        self._timeline.add(
            t=t,
            done=done,
            ok=self._sum("ok"),
            failed=self._sum("failed"),
            requests=self._sum("requests"),
            throttled=self._sum("throttled"),
            in_flight=in_flight,
            rates=rates,
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
        """Pairs finished, however: called, resumed, deduplicated or another shard's."""
        pairs = sum(s.ok + s.failed + s.skipped + s.deduplicated for s in self._ops.values())
        return pairs + self.shard_filtered_items * len(self.operations)

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
        """A cheap view for the progress display and periodic log lines."""
        t = self.elapsed
        done = self.done
        if len(self._recent) >= 2 and self._recent[-1][0] > self._recent[0][0]:
            (t0, d0), (t1, d1) = self._recent[0], self._recent[-1]
            per_s = (d1 - d0) / (t1 - t0)
        else:
            per_s = done / t if t > 0 else 0.0
        total = self.total
        eta = None
        if total is not None and per_s > 0:
            eta = round(max(0, total - done) / per_s, 1)
        return {
            "t": round(t, 3),
            "done": done,
            "total": total,
            "ok": self._sum("ok"),
            "failed": self._sum("failed"),
            "skipped": self._sum("skipped"),
            "throttled": self._sum("throttled"),
            "retries": self._sum("retries"),
            "requests": self._sum("requests"),
            "in_flight": self.in_flight,
            "concurrency_limit": self.concurrency_limit,
            "per_s": round(per_s, 3),
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
        cpu_s = max(0.0, self._cpu() - self._start_cpu)
        last_ok = (
            None
            if self._last_ok is None
            else round(self._start_wall + (self._last_ok - self._start), 3)
        )
        return {
            "items": self.items,
            "total_items": self.total_items,
            "requests": self._sum("requests"),
            "ok": ok,
            "failed": failed,
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
            "token_wait_ms": token_wait.summary_ms(),
            "failed_by_code": failed_by_code,
            "input": input_modes,
            "prepare_ms": {**self._prepare.summary_ms(), "by_mode": dict(self._prepared_by_mode)},
            "transcodes": {"count": self._transcodes, "seconds": round(self._transcode_s, 3)},
            "read_wait_ms": {
                **self._read_wait.summary_ms(),
                "seconds": round(self._read_wait.sum, 3),
            },
            "concurrency_limit": self.concurrency_limit,
            "source_budget": dict(self.source_budget),
            "at_concurrency_cap": self._share(self._at_cap_ticks),
            "cpu_s": round(cpu_s, 3),
            "started_unix": round(self._start_wall, 3),
            "last_success_unix": last_ok,
            "by_operation": {op: self._op_summary(op, elapsed) for op in self._ops},
            "timeline": self._timeline.as_dicts(),
            "verdict": tuning_verdict(self.verdict_inputs(cpu_s=cpu_s)).as_dict(),
        }

    def verdict_inputs(self, *, cpu_s: float | None = None) -> VerdictInputs:
        ops = [self._ops[op] for op in self.operations] or list(self._ops.values())
        ceilings = [s.ceiling for s in ops]
        return VerdictInputs(
            elapsed_s=self.elapsed,
            requests=self._sum("requests"),
            throttled=self._sum("throttled"),
            ok=self._sum("ok"),
            service_busy_s=sum(s.busy_s for s in self._ops.values()),
            workers=self.concurrency_limit,
            at_cap_share=self._share(self._at_cap_ticks),
            rate_ceiling_tps=(
                sum(c for c in ceilings if c is not None)
                if ceilings and None not in ceilings
                else None
            ),
            at_ceiling_share=max((self._share(s.at_ceiling_ticks) for s in ops), default=0.0),
            token_wait_s=sum(s.token_wait.sum for s in self._ops.values()),
            prepare_s=self._prepare.sum,
            prepared=self._prepare.count,
            read_wait_s=self._read_wait.sum,
            cpu_s=cpu_s if cpu_s is not None else max(0.0, self._cpu() - self._start_cpu),
        )

    def _op_summary(self, op: str, elapsed: float) -> dict[str, Any]:
        s = self._ops[op]
        return {
            "requests": s.requests,
            "ok": s.ok,
            "failed": s.failed,
            "skipped": s.skipped,
            "deduplicated": s.deduplicated,
            "retries": s.retries,
            "throttled": s.throttled,
            "attempts": s.attempts,
            "throughput_per_s": per_second(s.ok + s.failed, elapsed),
            "failed_by_code": dict(s.failed_by_code),
            "retries_by_code": dict(s.retries_by_code),
            "attempt_outcomes": dict(s.outcomes),
            "input": dict(s.input),
            "latency_ms": {**s.latency.summary_ms(), "busy_s": round(s.busy_s, 3)},
            "token_wait_ms": s.token_wait.summary_ms(),
            "end_to_end_ms": s.end_to_end.summary_ms(),
            "rate": s.settled_rate(),
            "rate_ceiling": s.ceiling,
        }

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
