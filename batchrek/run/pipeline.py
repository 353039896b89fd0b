"""One run, wired as an anyio task group.

    manifest ──Item──▶ filters (limit, shard, resume) ──▶ bounded stream ──▶ workers
    workers: prepare once ─▶ per operation: rate token ─▶ in-flight slot ─▶ call (retry)
    ──Result──▶ bounded stream ──▶ the one writer (sink)
    ticker: metrics.tick() every second, durable flush, rate/concurrency control

Memory is bounded by the two streams and the workers: nothing per item outlives
its result line. The pipeline knows nothing of botocore errors: ``retry.classify``
translates every exception into an ``ErrorInfo``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import anyio
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchrek.call.adaptive import AdaptiveRate, ConcurrencyController
from batchrek.call.credentials import force_refresh
from batchrek.call.operations import Operation, trim_response
from batchrek.call.ratelimit import ConcurrencyLimit, TokenBucket
from batchrek.call.retry import (
    Outcome,
    RetryPolicy,
    call_with_retry,
    classify,
    is_quota_throttle,
    is_throttle,
    needs_credential_refresh,
)
from batchrek.clock import Clock, SystemClock
from batchrek.config import Settings
from batchrek.errors import stopping_error
from batchrek.ledger import Check, Identity, Verdict, identify, known_identity
from batchrek.limits import default_tps
from batchrek.manifest import read_manifest
from batchrek.models import ErrorInfo, ImageInput, Item, ManifestProblem, Result
from batchrek.observe.metrics.run import RunMetrics
from batchrek.observe.progress import run_progress
from batchrek.prepare.route import ItemPrep, content_key
from batchrek.run import streams
from batchrek.run.dedupe import Deduper
from batchrek.run.services import Services

__all__ = ["RunOutcome", "run_batch", "shard_of"]

# The service refused an S3Object it could not take as it is: download and transcode.
_FALLBACK_TO_BYTES = frozenset({"InvalidImageFormatException", "ImageTooLargeException"})
MANIFEST_OPERATION = "manifest"


def shard_of(item_id: str, shard_count: int) -> int:
    """A stable partition of ids: the same id lands in the same shard on every pod."""
    digest = hashlib.blake2b(item_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shard_count


@dataclass(frozen=True, slots=True)
class RunOutcome:
    summary: dict[str, Any]
    failed_pairs: int
    interrupted: bool

    @property
    def exit_code(self) -> int:
        return 1 if self.failed_pairs else 0


@dataclass(frozen=True, slots=True)
class _Work:
    item: Item
    ops: tuple[Operation, ...]
    # With a ledger: the identity and checks, when the manifest gave the identity.
    identity: Identity | None = None
    checks: dict[str, Check] | None = None


class _OpControl:
    """The rate limit (fixed or adaptive) for one operation; the quota is per
    operation, and per account, so a sharded run takes its share of it."""

    def __init__(self, op: Operation, settings: Settings, region: str, clock: Clock) -> None:
        self.op = op
        fixed = settings.fixed_rate(op.method)
        split = (settings.shard_count or 1) if settings.shard_rate_split else 1
        start = fixed if fixed is not None else default_tps(op.api_name, region)
        self.bucket = TokenBucket(start / split, clock=clock)
        # The controller drives the bucket's rate and its pauses itself.
        self.adaptive = (
            AdaptiveRate(start / split, clock=clock, target=self.bucket) if fixed is None else None
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


class _Run:
    def __init__(
        self,
        settings: Settings,
        services: Services,
        ops: tuple[Operation, ...],
        metrics: RunMetrics,
        clock: Clock,
    ) -> None:
        self.s = settings
        self.svc = services
        self.ops = ops
        self.metrics = metrics
        self.clock = clock
        self.controls = {op.method: _OpControl(op, settings, services.region, clock) for op in ops}
        self.inflight_limit = ConcurrencyLimit(settings.concurrency)
        self.concurrency = ConcurrencyController(settings.concurrency, rate=self._total_rate)
        self.inflight_limit.limit = self.concurrency.limit
        self.policy = RetryPolicy(
            max_attempts=settings.max_attempts, deadline_s=settings.item_deadline_s
        )
        self.deduper = Deduper(settings.dedupe_cache) if settings.dedupe else None
        self.stopping = False
        self.failed = 0

    def _total_rate(self) -> float | None:
        """Requests/s the limiters allow in all (None: some operation is unlimited)."""
        total = 0.0
        for control in self.controls.values():
            rate = control.bucket.rate
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

    async def produce(self, send: MemoryObjectSendStream[_Work | Result]) -> None:
        s = self.s
        shard_count = s.shard_count or 1
        shard_index = s.shard_index or 0
        taken = 0
        resume = self.svc.resume
        async with send:
            entries = read_manifest(s.manifest, fmt=s.manifest_format, s3=self.svc.s3)
            async for entry in _timed(entries, self.metrics.observe_read_wait, self.clock):
                if self.stopping:
                    break
                if isinstance(entry, ManifestProblem):
                    self.metrics.manifest_problem()
                    if resume is not None and (entry.id, MANIFEST_OPERATION) in resume:
                        self.metrics.skipped(MANIFEST_OPERATION)
                        continue
                    await streams.send(send, _problem_result(entry))
                    continue
                if shard_count > 1 and shard_of(entry.id, shard_count) != shard_index:
                    self.metrics.shard_filtered()
                    continue
                if s.limit is not None and taken >= s.limit:
                    break
                taken += 1
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
                    await streams.send(send, _Work(entry, todo, identity, checks))

    # -- workers --------------------------------------------------------------

    async def work(
        self,
        recv: MemoryObjectReceiveStream[_Work | Result],
        out: MemoryObjectSendStream[Result],
    ) -> None:
        async with recv, out:
            async for work in streams.items(recv):
                if isinstance(work, Result):  # a manifest problem, already a record
                    self.failed += 1
                    self.metrics.record_result(work, 0.0)
                    await streams.send(out, work)
                    continue
                if self.stopping:
                    # Stopping: leave the rest unread; a rerun picks them up.
                    continue
                await self._process(work, out)

    async def _process(self, work: _Work, out: MemoryObjectSendStream[Result]) -> None:
        item = work.item
        started = self.clock.monotonic()
        deduper = self.deduper
        key = content_key(item) if deduper is not None else None
        earlier: dict[str, Result] = {}
        if key is not None and deduper is not None:
            earlier = dict(await deduper.claim(key) or {})
        owner = key is not None and not earlier
        published: dict[str, Result] = {}
        prep = self.svc.preparer.for_item(item)
        ledger = self.svc.ledger
        ops, identity, checks = work.ops, work.identity, work.checks or {}
        try:
            if ledger is not None and identity is None:
                identity = await identify(item, s3=self.svc.s3, read_bytes=prep.source_bytes)
                if identity is not None:
                    ops, checks = ledger.split(item, ops, identity)
                    for op in work.ops:
                        if op not in ops:
                            self.metrics.skipped(op.method)
            for op in ops:
                reused = earlier.get(op.method)
                check = checks.get(op.method)
                copied = None
                if (
                    reused is None
                    and check is not None
                    and check.verdict is Verdict.REUSED
                    and ledger is not None
                    and identity is not None
                ):
                    copied = await ledger.reuse(check, item, op, identity)
                if copied is not None:
                    result = copied
                    self.metrics.deduplicated(op.method)
                elif reused is not None:
                    result = _reuse(reused, item)
                    self.metrics.deduplicated(op.method)
                else:
                    result = await self._call(prep, op)
                    if result.done:
                        published[op.method] = result
                if ledger is not None and identity is not None and copied is None:
                    result = ledger.stamp(result, identity)
                if result.status == "error":
                    self.failed += 1
                self.metrics.record_result(result, self.clock.monotonic() - started)
                await streams.send(out, result)
        finally:
            if owner and key is not None and deduper is not None:
                deduper.release(key, published)
            if prep.needs_cleanup:  # shielded: a staged copy is deleted even on a stop
                with anyio.CancelScope(shield=True):
                    await _quietly(prep.cleanup)
            else:
                prep.release()

    async def _call(self, prep: ItemPrep, op: Operation) -> Result:
        item = prep.item
        try:
            inp = await prep.input_for(op.limits)
        except Exception as exc:
            return _error_result(item, op, classify(exc), attempts=0)
        self._observe_prepare(inp)
        outcome = await self._with_retry(op, inp, item.id)
        attempts = outcome.attempts
        if (
            outcome.error is not None
            and outcome.error.code in _FALLBACK_TO_BYTES
            and inp.mode == "s3object"
            and self.s.oversize != "fail"
        ):
            try:
                inp = await prep.bytes_for(op.limits)
            except Exception as exc:
                return _error_result(item, op, classify(exc), attempts=attempts)
            self._observe_prepare(inp)
            outcome = await self._with_retry(op, inp, item.id)
            attempts += outcome.attempts
        if outcome.error is not None or outcome.value is None:
            info = outcome.error or ErrorInfo("InternalClientError", "no response")
            return _error_result(item, op, info, attempts=attempts, inp=inp)
        response, latency_s = outcome.value
        return Result(
            id=item.id,
            source=str(item.source),
            operation=op.method,
            status="ok",
            input=inp.mode,
            attempts=attempts,
            latency_ms=latency_s * 1000,
            response=trim_response(response),
            meta=item.meta,
            transcode=inp.transcode_record(),
        )

    async def _with_retry(
        self, op: Operation, inp: ImageInput, item_id: str
    ) -> Outcome[tuple[dict[str, Any], float]]:
        return await call_with_retry(
            lambda: self._attempt(op, inp, item_id),
            self.policy,
            clock=self.clock,
            on_retry=lambda _n, info, _delay: self.metrics.retried(op.method, info.code),
            before_retry=self._before_retry,
        )

    async def _before_retry(self, info: ErrorInfo) -> None:
        if needs_credential_refresh(info):
            await force_refresh(self.svc.rekognition)

    def _observe_prepare(self, inp: ImageInput) -> None:
        self.metrics.observe_prepare(inp.prepare_s, transcoded=inp.transcoded, mode=inp.mode)

    async def _attempt(
        self, op: Operation, inp: ImageInput, item_id: str
    ) -> tuple[dict[str, Any], float]:
        """One request: a rate token, an in-flight slot, the call. Returns (response, s)."""
        control = self.controls[op.method]
        waited = await control.bucket.acquire()
        self.metrics.observe_token_wait(op.method, waited)
        async with self.inflight_limit:
            self.metrics.attempt_started(op.method)
            t0 = self.clock.monotonic()
            try:
                response = await getattr(self.svc.rekognition, op.method)(
                    **op.request(inp.image, item_id=item_id)
                )
            except Exception as exc:
                info = classify(exc)
                throttled = is_throttle(info)
                self.metrics.attempt_finished(
                    op.method,
                    self.clock.monotonic() - t0,
                    outcome="throttled" if throttled else info.code,
                )
                if throttled:
                    control.on_throttle(soft=not is_quota_throttle(info))
                raise
            elapsed = self.clock.monotonic() - t0
            self.metrics.attempt_finished(op.method, elapsed, outcome="ok")
            self.concurrency.observe(elapsed)
            control.on_success()
            return response, elapsed

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
                line = orjson.dumps(result.to_record()) + b"\n"
                if ledger_sink is not None and ledger is not None:
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
                ceiling = control.adaptive.ceiling if control.adaptive is not None else None
                self.metrics.set_rate(method, control.rate, ceiling=ceiling)
            limit = self.concurrency.limit
            if limit != self.inflight_limit.limit:
                self.inflight_limit.limit = limit
            self.metrics.set_concurrency_limit(limit)
            self.metrics.tick()
            now = self.clock.monotonic()
            if now - last_flush >= 1.0:
                await self.svc.sink.flush(durable=True)
                last_flush = now


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


async def _quietly(fn: Callable[[], Any]) -> None:
    """Cleanup of a staged copy must never fail the item; a lifecycle rule on the
    staging prefix is the backstop, so a failure here is only logged."""
    try:
        await fn()
    except Exception as exc:
        logging.getLogger("batchrek").warning("staging cleanup failed: %s", exc)


def _reuse(earlier: Result, item: Item) -> Result:
    return replace(
        earlier,
        id=item.id,
        source=str(item.source),
        meta=item.meta,
        attempts=0,
        latency_ms=0.0,
        extra={"deduplicated_from": earlier.id},
    )


def _error_result(
    item: Item, op: Operation, info: ErrorInfo, *, attempts: int, inp: ImageInput | None = None
) -> Result:
    return Result(
        id=item.id,
        source=str(item.source),
        operation=op.method,
        status="error",
        input=inp.mode if inp is not None else "none",
        attempts=attempts,
        latency_ms=0.0,
        error=info,
        meta=item.meta,
    )


def _problem_result(problem: ManifestProblem) -> Result:
    return Result(
        id=problem.id,
        source=problem.raw,
        operation=MANIFEST_OPERATION,
        status="error",
        input="none",
        attempts=0,
        latency_ms=0.0,
        error=ErrorInfo("ManifestError", f"line {problem.line}: {problem.reason}"),
    )


async def run_batch(
    settings: Settings,
    *,
    clock: Clock | None = None,
    stop: anyio.Event | None = None,
) -> RunOutcome:
    """Run one batch to the end (or until ``stop`` is set) and return its outcome."""
    clock = clock or SystemClock()
    ops = settings.build_operations()
    metrics = RunMetrics(clock, [op.method for op in ops])
    async with AsyncExitStack() as stack:
        services = await Services.open(settings, stack)
        run = _Run(settings, services, ops, metrics, clock)
        try:
            await _drive(run, stop)
        except BaseExceptionGroup as group:
            error = stopping_error(group)
            if error is not None:
                raise error from None
            raise
        await services.sink.flush(durable=True)
    metrics.finish()
    summary = metrics.summary()
    if services.ledger is not None:
        summary["ledger"] = {
            **services.ledger.summary(),
            "load_s": round(services.ledger_load_s, 3),
        }
    failed = run.failed + (services.resume.failed if services.resume is not None else 0)
    interrupted = stop is not None and stop.is_set()
    return RunOutcome(summary=summary, failed_pairs=failed, interrupted=interrupted)


async def _drive(run: _Run, stop: anyio.Event | None) -> None:
    # Workers = in-flight slots plus a few more, so preparing the next images
    # overlaps with the calls in flight.
    width = run.s.concurrency + max(4, run.s.concurrency // 4)
    work_send, work_recv = anyio.create_memory_object_stream[_Work | Result](width * 2)
    res_send, res_recv = anyio.create_memory_object_stream[Result](width * 4)
    async with anyio.create_task_group() as outer:
        outer.start_soon(run.write, res_recv)  # ends when every worker has closed its stream
        async with anyio.create_task_group() as aux:
            aux.start_soon(run.tick)
            aux.start_soon(run.estimate_total)
            aux.start_soon(
                partial(
                    run_progress,
                    run.metrics,
                    interval_s=run.s.log_interval_s,
                    live=run.s.progress,
                    logger=logging.getLogger("batchrek.observe.progress"),
                )
            )
            async with anyio.create_task_group() as tg:
                producer_scope = anyio.CancelScope()

                async def _producer() -> None:
                    with producer_scope:
                        await run.produce(work_send)

                if stop is not None:
                    aux.start_soon(_watch_stop, run, stop, producer_scope, tg.cancel_scope)
                tg.start_soon(_producer)
                async with res_send:
                    for _ in range(width):
                        tg.start_soon(run.work, work_recv.clone(), res_send.clone())
                work_recv.close()
            aux.cancel_scope.cancel()


async def _watch_stop(
    run: _Run, stop: anyio.Event, producer_scope: anyio.CancelScope, workers: anyio.CancelScope
) -> None:
    await stop.wait()
    run.stopping = True
    producer_scope.cancel()
    # In-flight calls get the grace period to finish and be written; then they go.
    await anyio.sleep(run.s.grace_period_s)
    workers.cancel()
