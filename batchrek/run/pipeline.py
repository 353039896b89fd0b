"""One run, wired as an anyio task group. The wiring only: one item's work is
``run.work``, the shard and limit filter ``manifest.Selection``.

    manifest ──Item──▶ select (shard, limit) ─▶ resume or ledger ──▶ bounded stream ──▶ workers
    workers: ItemWorker.process (prepare once, per operation: token, slot, call)
    ──Result──▶ bounded stream ──▶ the one writer (sink)
    ticker: metrics.tick() every second, durable flush, rate/concurrency control
    halt: a run-level failure (``RunStopped``) stops the run the way SIGTERM does:
          no new item or attempt starts, in-flight calls finish and are written

Memory is bounded by the two streams and the workers: nothing per item outlives
its result line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from functools import partial

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchrek.call import (
    ConcurrencyController,
    ConcurrencyLimit,
    Operation,
    RateControl,
    RetryPolicy,
)
from batchrek.clock import Clock, SystemClock
from batchrek.config import Settings
from batchrek.errors import ManifestUnreadable, OutputFailed, StopsTheRun, stopping_error
from batchrek.ledger import known_identity
from batchrek.limits import default_tps
from batchrek.manifest import read_manifest
from batchrek.models import Item, ManifestProblem, Result
from batchrek.observe import RunMetrics, run_progress
from batchrek.run import streams
from batchrek.run.dedupe import Deduper
from batchrek.run.halt import Safeguards
from batchrek.run.identity import run_identity
from batchrek.run.outcome import RunOutcome, outcome
from batchrek.run.peers import start_peers
from batchrek.run.records import MANIFEST_OPERATION, problem_result, record_line
from batchrek.run.services import Services
from batchrek.run.work import ItemWorker, Work

__all__ = ["no_items", "run_batch"]

log = logging.getLogger("batchrek.run")


def _rate_controls(
    settings: Settings, ops: tuple[Operation, ...], region: str, clock: Clock
) -> dict[str, RateControl]:
    """One rate limit per operation; the quota is per account, so a sharded run
    takes its share of it."""
    split = (settings.shard_count or 1) if settings.shard_rate_split else 1
    controls = {}
    for op in ops:
        fixed = settings.fixed_rate(op.method)
        controls[op.method] = RateControl(
            fixed_tps=fixed / split if fixed is not None else None,
            start_tps=default_tps(op.api_name, region) / split,
            clock=clock,
        )
    return controls


class _Run:
    def __init__(
        self,
        settings: Settings,
        services: Services,
        ops: tuple[Operation, ...],
        metrics: RunMetrics,
        clock: Clock,
        *,
        guards: Safeguards,
    ) -> None:
        self.s = settings
        self.svc = services
        self.halt = guards.halt
        self.ops = ops
        self.metrics = metrics
        self.clock = clock
        self.controls = _rate_controls(settings, ops, services.region, clock)
        for method, control in self.controls.items():  # shown from the start, not 1 s in
            metrics.set_rate(method, control.rate, ceiling=control.ceiling)
        self.inflight_limit = ConcurrencyLimit(settings.concurrency)
        self.concurrency = ConcurrencyController(settings.concurrency, rate=self._total_rate)
        self.inflight_limit.limit = self.concurrency.limit
        self.worker = ItemWorker(
            rekognition=services.rekognition,
            preparer=services.preparer,
            controls=self.controls,
            inflight=self.inflight_limit,
            concurrency=self.concurrency,
            policy=RetryPolicy(
                max_attempts=settings.max_attempts, deadline_s=settings.item_deadline_s
            ),
            deduper=Deduper(settings.dedupe_cache) if settings.dedupe else None,
            ledger=services.ledger,
            s3=services.s3,
            oversize=settings.oversize,
            metrics=metrics,
            clock=clock,
            **guards.for_worker(settings, services, ops, clock),
        )
        self.stopping = False
        self.manifest_error: ManifestUnreadable | None = None  # found mid-run
        self.problems = 0  # manifest problems recorded by this run

    @property
    def failed(self) -> int:
        return self.worker.failed + self.problems

    def _total_rate(self) -> float | None:
        """Requests/s the limiters allow in all (None: some operation is unlimited)."""
        total = 0.0
        for control in self.controls.values():
            rate = control.rate
            if rate is None:
                return None
            total += rate
        return total

    async def estimate_total(self) -> None:
        """For the ETA: a local, uncompressed line manifest's line count (counted in a
        thread, while the run goes on). Header, blank and comment lines make it an
        upper bound; other sources leave the total unknown."""
        path = self.s.manifest
        if path.endswith((".gz", ".json")):
            return
        lines = await anyio.to_thread.run_sync(_count_lines, path)
        if lines is None:
            return
        total = lines // (self.s.shard_count or 1)
        if self.s.limit is not None:
            total = min(total, self.s.limit)
        self.metrics.set_total(total)

    # -- producer -------------------------------------------------------------

    async def produce(self, send: MemoryObjectSendStream[Work | Result]) -> None:
        options = replace(self.s.read_options(), on_skip=self.metrics.listing_skipped)
        entries = _timed(
            read_manifest(
                self.s.manifest, fmt=self.s.manifest_format, s3=self.svc.s3, options=options
            ),
            self.metrics.observe_read_wait,
            self.clock,
        )
        selected = self.s.selection().select(entries, on_other_shard=self.metrics.shard_filtered)
        async with send:
            try:
                await self._dispatch(selected, send)
            except ManifestUnreadable as exc:
                if self.metrics.items == 0:
                    raise  # nothing was sent on: stop at once
                # The file turned out not to be a manifest after some items went on
                # (mostly malformed past 1,000 lines), or its stream broke: calls in
                # flight finish and are written, queued items are left for a rerun,
                # then the run stops (exit 2) with its summary, like any other stop.
                self.stopping = True
                self.manifest_error = exc

    async def _dispatch(
        self,
        selected: AsyncIterator[Item | ManifestProblem],
        send: MemoryObjectSendStream[Work | Result],
    ) -> None:
        resume = self.svc.resume
        async for entry in selected:
            if self.stopping:
                break
            if isinstance(entry, ManifestProblem):
                self.metrics.manifest_problem()
                if resume is not None and (entry.id, MANIFEST_OPERATION) in resume:
                    self.metrics.skipped(MANIFEST_OPERATION)
                    continue
                await streams.send(send, problem_result(entry))
                continue
            self.metrics.item_read()
            todo = tuple(
                op for op in self.ops if resume is None or (entry.id, op.method) not in resume
            )
            identity = checks = None
            ledger = self.svc.ledger
            if ledger is not None and todo and (identity := known_identity(entry)):
                todo, checks = ledger.split(entry, todo, identity)  # unchanged: skip
            for op in self.ops:
                if op not in todo:
                    self.metrics.skipped(op.method)
            if todo:
                await streams.send(send, Work(entry, todo, identity, checks))
            else:
                self.metrics.item_finished()
        m = self.metrics
        if not self.stopping and m.items + m.manifest_problems + m.shard_filtered_items == 0:
            no_items(self.s)

    # -- workers --------------------------------------------------------------

    async def work(
        self,
        recv: MemoryObjectReceiveStream[Work | Result],
        out: MemoryObjectSendStream[Result],
    ) -> None:
        async with recv, out:
            async for work in streams.items(recv):
                if isinstance(work, Result):  # a manifest problem, already a record
                    self.problems += 1
                    self.metrics.record_result(work, 0.0)
                    await streams.send(out, work)
                    continue
                if self.stopping:
                    # Stopping: leave the rest unread; a rerun picks them up.
                    continue
                await self.worker.process(work, out)

    # -- writer and ticker ----------------------------------------------------

    async def write(self, recv: MemoryObjectReceiveStream[Result]) -> None:
        """The one writer. Records go to the OS as soon as no more are waiting: under
        load they coalesce into big writes, and a SIGKILL never loses a finished
        (billed) call that sat in our buffer. fsync is the ticker's job, once a second
        (that bounds what a machine crash, not a process kill, can lose)."""
        sink = self.svc.sink
        ledger, ledger_sink = self.svc.ledger, self.svc.ledger_sink
        async with recv:
            async for result in streams.items(recv):
                line = record_line(result)
                if ledger_sink is not None and ledger is not None:
                    # Remembered with where it lands; its entry once it is durable.
                    await ledger_sink.write(line, ledger.keys_of(result))
                else:
                    await sink.write(line)
                if recv.statistics().current_buffer_used == 0:
                    await sink.flush()

    async def tick(self) -> None:
        last_flush = self.clock.monotonic()
        while True:
            await self.clock.sleep(1.0)
            for method, control in self.controls.items():
                self.metrics.set_rate(method, control.rate, ceiling=control.ceiling)
            limit = self.concurrency.limit
            if limit != self.inflight_limit.limit:
                log.debug("concurrency: in-flight cap %d -> %d (rate x latency x headroom)",
                          self.inflight_limit.limit, limit)  # fmt: skip
                self.inflight_limit.limit = limit
            self.metrics.set_concurrency_limit(limit)
            self.metrics.tick()
            now = self.clock.monotonic()
            if now - last_flush >= 1.0:
                await self.svc.sink.flush(durable=True)
                last_flush = now


def no_items(settings: Settings) -> None:
    """An empty manifest: exit 2, because a job that finds nothing to do is usually a
    wrong path or an upstream failure; ``allow_empty`` says it is expected."""
    if settings.allow_empty:
        log.warning("no items in %s: nothing to do (allow_empty is set)", settings.manifest)
        return
    raise ManifestUnreadable(
        f"no items: {settings.manifest} lists no images; if that can be normal for this "
        "job, set allow_empty = true in the --config file (or BATCHREK_ALLOW_EMPTY=1)"
    )


def _count_lines(path: str) -> int | None:
    if not os.path.isfile(path):
        return None
    count = 0
    last = b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * 1024 * 1024):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


async def _timed(
    source: AsyncIterator[Item | ManifestProblem],
    observe: Callable[[float], None],
    clock: Clock,
) -> AsyncIterator[Item | ManifestProblem]:
    """Measure how long the run waits on the manifest source (a slow-source signal)."""
    while True:
        t0 = clock.monotonic()
        try:
            entry = await source.__anext__()
        except StopAsyncIteration:
            return
        observe(clock.monotonic() - t0)
        yield entry


async def run_batch(
    settings: Settings,
    *,
    clock: Clock | None = None,
    stop: anyio.Event | None = None,
) -> RunOutcome:
    """Run one batch to the end (or until ``stop`` is set) and return its outcome.

    A run-stopping error (``ConfigError``, ``ManifestUnreadable``) surfaces as itself,
    not wrapped in the task group's ExceptionGroup. A failed output write
    (``OutputFailed``) stops billing at once (the task group is cancelled, in-flight
    calls with it) and is returned in the outcome, so the summary is still printed;
    so is a run-level failure (``RunStopped``, ``ServiceOutage``), which stops the run
    the gentler way (``run.halt``), and a manifest found unusable after items went on
    (``NotAManifest``; before any did, it is raised)."""
    clock = clock or SystemClock()
    ops = settings.build_operations()
    metrics = RunMetrics(clock, [op.method for op in ops])
    guards = Safeguards.for_run(settings, clock)
    error: StopsTheRun | None = None
    async with AsyncExitStack() as stack:
        services = await Services.open(settings, stack, ops=ops, clock=clock, guards=guards)
        metrics.describe(
            run_identity(settings, region=services.region, output=services.output),
            output={
                "path": services.output,
                "resumed": settings.resume,
                "pairs_done_before": services.resume.done if services.resume is not None else 0,
            },
        )
        metrics.set_capacity(concurrency=settings.concurrency, workers=_width(settings))
        run = _Run(settings, services, ops, metrics, clock, guards=guards)
        try:
            try:
                await _drive(run, stop)
            except BaseExceptionGroup as group:
                found = stopping_error(group)
                if found is None:
                    raise
                raise found from None
            await services.sink.flush(durable=True)  # a failure of the last write lands here
        except OutputFailed as exc:
            error = exc  # billing has stopped; the summary still says what was done
        budget = services.preparer.fetcher.budget
        if budget is not None:
            metrics.set_source_budget(total=budget.total, peak=budget.peak, waits=budget.waits)
    metrics.finish()
    guards.report(metrics)
    summary = metrics.summary()
    if services.ledger is not None:
        summary["ledger"] = {
            **services.ledger.summary(),
            "load_s": round(services.ledger_load_s, 3),
        }
    return outcome(
        summary,
        failed=run.failed,
        resume=services.resume,
        total_pairs=metrics.total,
        interrupted=stop is not None and stop.is_set(),
        error=error or guards.halt.error or run.manifest_error,
    )


def _width(settings: Settings) -> int:
    """Workers = in-flight slots plus a few more, so preparing the next images
    overlaps with the calls in flight."""
    return settings.concurrency + max(4, settings.concurrency // 4)


async def _drive(run: _Run, stop: anyio.Event | None) -> None:
    width = _width(run.s)
    work_send, work_recv = anyio.create_memory_object_stream[Work | Result](width * 2)
    res_send, res_recv = anyio.create_memory_object_stream[Result](width * 4)
    async with anyio.create_task_group() as outer:
        outer.start_soon(run.write, res_recv)  # ends when every worker has closed its stream
        async with anyio.create_task_group() as aux:
            aux.start_soon(run.tick)
            aux.start_soon(run.estimate_total)
            start_peers(aux, run.s, run.controls, run.svc, run.metrics.findings)
            aux.start_soon(
                partial(
                    run_progress,
                    run.metrics,
                    interval_s=run.s.log_interval_s,
                    # JSON logs: every line on stderr is JSON, so no live table.
                    live=run.s.progress and run.s.log_format != "json",
                    logger=logging.getLogger("batchrek.progress"),
                )
            )
            async with anyio.create_task_group() as tg:
                producer_scope = anyio.CancelScope()

                async def _producer() -> None:
                    with producer_scope:
                        await run.produce(work_send)

                aux.start_soon(_watch_stop, run, stop, producer_scope, tg.cancel_scope)
                tg.start_soon(_producer)
                async with res_send:
                    for _ in range(width):
                        tg.start_soon(run.work, work_recv.clone(), res_send.clone())
                work_recv.close()
            aux.cancel_scope.cancel()


async def _watch_stop(
    run: _Run, stop: anyio.Event | None, producer: anyio.CancelScope, workers: anyio.CancelScope
) -> None:
    """Stop taking work on the caller's ``stop`` (a signal) or the run's own halt."""
    await run.halt.wait(stop)
    run.stopping = True
    producer.cancel()
    # In-flight calls get the grace period to finish and be written; then they go.
    await run.clock.sleep(run.s.grace_period_s)
    workers.cancel()
