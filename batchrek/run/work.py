"""One manifest item, start to finish: dedupe, prepare once, then per operation a
paced, bounded, retried call (with the Bytes fallback), and one record each.

    Item ─▶ dedupe claim ─▶ prepare (once per set of limits) ─▶ per operation:
            breaker ─▶ rate token ─▶ in-flight slot ─▶ call (retried) ─▶ Result ─▶ the writer

With a ledger, the item's content identity comes first (from the manifest, one HEAD,
or the bytes the call needs anyway); unchanged operations are skipped, a copy's
result is read back from an earlier output instead of called, and every result is
stamped with the identity and parameters digest that key it.

Nothing here reads botocore errors: ``call.classify`` translates every exception into
an ``ErrorInfo`` first. A failure that says the whole run is wrong (``call.RunGuard``)
or an outage past its timeout (the breaker) is ``RunStopped``: the item gets no
record (a rerun does it), ``Halt`` tells the run, which stops taking work, and no
further attempt starts once the run is stopping: the halt's error (``RunStopped``, or
``OutputFailed`` from a stalled upload) is raised instead, and an item that meets it
gets no record either. The run's preflight checks
(``call.preflight``) run once, when the first call is about to be made: a rerun with
nothing left to do, or a manifest that cannot be read, calls nothing at all.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from batchrek.call import (
    CircuitBreaker,
    ConcurrencyController,
    ConcurrencyLimit,
    Operation,
    Outcome,
    RateControl,
    RetryPolicy,
    RunGuard,
    call_with_retry,
    classify,
    expired_token_stop,
    force_refresh,
    guarded,
    is_quota_throttle,
    is_throttle,
    needs_credential_refresh,
    trim_response,
)
from batchrek.clock import Clock
from batchrek.errors import STOPS_THE_RUN, RunStopped, forget_frames
from batchrek.ledger import Check, Identity, Ledger, Verdict, identify
from batchrek.models import ErrorInfo, ImageInput, Item, Oversize, Result
from batchrek.observe import RunMetrics
from batchrek.prepare import ItemPrep, Preparer, content_key
from batchrek.run import streams
from batchrek.run.bucketwatch import S3ObjectWatch
from batchrek.run.dedupe import Deduper
from batchrek.run.halt import Halt
from batchrek.run.records import error_result, reused_result

__all__ = ["ItemWorker", "Work"]

# The service refused an S3Object it could not take as it is: download and transcode.
_FALLBACK_TO_BYTES = frozenset({"InvalidImageFormatException", "ImageTooLargeException"})

log = logging.getLogger("batchrek")


@dataclass(frozen=True, slots=True)
class Work:
    """An item and the operations it still needs (resume may have done some)."""

    item: Item
    ops: tuple[Operation, ...]
    # With a ledger, when the manifest gave the identity: the producer's verdicts.
    identity: Identity | None = None
    checks: Mapping[str, Check] | None = None


class ItemWorker:
    """Shared by every worker task of a run; holds no per-item state."""

    def __init__(
        self,
        *,
        rekognition: Any,
        preparer: Preparer,
        controls: Mapping[str, RateControl],
        inflight: ConcurrencyLimit,
        concurrency: ConcurrencyController,
        policy: RetryPolicy,
        deduper: Deduper | None,
        ledger: Ledger | None = None,
        s3: Any = None,
        oversize: Oversize,
        metrics: RunMetrics,
        clock: Clock,
        breaker: CircuitBreaker,
        guard: RunGuard,
        halt: Halt,
        preflight: Callable[[], Awaitable[None]],
    ) -> None:
        self.rekognition = rekognition
        self.preparer = preparer
        self.controls = controls
        self.inflight = inflight
        self.concurrency = concurrency
        self.policy = policy
        self.deduper = deduper
        self.ledger = ledger
        self.s3 = s3  # for a HEAD when the ledger needs an S3 object's identity
        self.oversize = oversize
        self.metrics = metrics
        self.clock = clock
        self.breaker = breaker
        self.guard = guard
        self.halt = halt
        self.preflight = _Once(preflight)
        self.buckets = S3ObjectWatch(region=guard.region, warn=metrics.findings.warn)
        self.failed = 0  # error records written by this run

    async def process(self, work: Work, out: MemoryObjectSendStream[Result]) -> None:
        item = work.item
        started = self.clock.monotonic()
        deduper = self.deduper
        key = content_key(item) if deduper is not None else None
        earlier: dict[str, Result] = {}
        if key is not None and deduper is not None:
            earlier = dict(await deduper.claim(key) or {})
        owner = key is not None and not earlier
        published: dict[str, Result] = {}
        prep = self.preparer.for_item(item)
        prepared: set[int] = set()  # inputs already counted: one preparation, many ops
        ledger = self.ledger
        ops, identity, checks = work.ops, work.identity, work.checks or {}
        try:
            if ledger is not None and identity is None:
                identity = await identify(item, s3=self.s3, read_bytes=prep.source_bytes)
                if identity is not None:
                    ops, checks = ledger.split(item, ops, identity)
                    for op in work.ops:
                        if op not in ops:
                            self.metrics.skipped(op.method)  # unchanged
            for op in ops:
                reused = earlier.get(op.method)
                check = checks.get(op.method)
                copied = None
                if reused is None and check is not None and check.verdict is Verdict.REUSED:
                    copied = await self._from_ledger(check, item, op, identity)
                if copied is not None:
                    result = copied
                    self.metrics.deduplicated(op.method)
                elif reused is not None:
                    result = reused_result(reused, item)
                    self.metrics.deduplicated(op.method)
                else:
                    result = await self._call(prep, op, prepared)
                    if result.done:
                        published[op.method] = result
                if ledger is not None and identity is not None and copied is None:
                    result = ledger.stamp(result, identity)
                if result.status == "error":
                    self.failed += 1
                self.metrics.record_result(result, self.clock.monotonic() - started)
                await streams.send(out, result)
            self.metrics.item_finished()
        # No record: the pair is not done, a rerun does it. That includes the output
        # failing mid-run: the halt then refuses new attempts with ``OutputFailed``,
        # which must never be written as this image's (permanent) error.
        except STOPS_THE_RUN as stop:
            self.halt(stop)
        finally:
            if owner and key is not None and deduper is not None:
                deduper.release(key, published)
            if prep.needs_cleanup:  # shielded: a staged copy is deleted even on a stop
                with anyio.CancelScope(shield=True):
                    await _quietly(prep.cleanup)
            else:
                prep.release()

    async def _from_ledger(
        self, check: Check, item: Item, op: Operation, identity: Identity | None
    ) -> Result | None:
        """An earlier run's record of this content, copied for ``item``; None when it
        does not read back as the right record (then the pair is analysed)."""
        if self.ledger is None or identity is None:
            return None
        return await self.ledger.reuse(check, item, op, identity)

    async def _call(self, prep: ItemPrep, op: Operation, prepared: set[int]) -> Result:
        item = prep.item
        try:
            inp = await prep.input_for(op.limits)
        except STOPS_THE_RUN:
            raise
        except Exception as exc:
            forget_frames(exc)  # they hold the image bytes (errors.forget_frames)
            return error_result(item, op, classify(exc), attempts=0)
        self._observe_prepare(inp, prepared)
        outcome = await self._with_retry(op, inp, item.id)
        attempts = outcome.attempts
        if (
            outcome.error is not None
            and outcome.error.code in _FALLBACK_TO_BYTES
            and inp.mode == "s3object"
            and self.oversize != "fail"
        ):
            try:
                inp = await prep.bytes_for(op.limits)
            except STOPS_THE_RUN:
                raise
            except Exception as exc:
                forget_frames(exc)
                return error_result(item, op, classify(exc), attempts=attempts)
            self._observe_prepare(inp, prepared)
            outcome = await self._with_retry(op, inp, item.id)
            attempts += outcome.attempts
        if inp.mode == "s3object":
            bucket = inp.image["S3Object"]["Bucket"]
            self.buckets.observe(bucket, outcome.error.code if outcome.error else None)
        if outcome.error is not None or outcome.value is None:
            info = outcome.error or ErrorInfo("InternalClientError", "no response")
            info = self.guard.check(op, info)  # raises RunStopped for a run-level answer
            return error_result(item, op, info, attempts=attempts, inp=inp)
        self.guard.succeeded(op)
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
            image=inp.image_record(),
            warnings=inp.warnings,
        )

    async def _with_retry(
        self, op: Operation, inp: ImageInput, item_id: str
    ) -> Outcome[tuple[dict[str, Any], float]]:
        return await call_with_retry(
            lambda: guarded(self.breaker, lambda: self._attempt(op, inp, item_id)),
            self.policy,
            clock=self.clock,
            on_retry=lambda n, info, delay: self._on_retry(op, item_id, n, info, delay),
            before_retry=self._before_retry,
        )

    def _on_retry(self, op: Operation, item_id: str, n: int, info: ErrorInfo, delay: float) -> None:
        self.metrics.retried(op.method, info.code)
        log.debug("retry %s %s after %s (attempt %d), in %.2f s", item_id, op.method, info.code,
                  n, delay)  # fmt: skip

    async def _before_retry(self, info: ErrorInfo) -> None:
        if needs_credential_refresh(info):
            try:
                refreshed = await force_refresh(self.rekognition)
            except Exception as exc:  # the provider itself failed (STS down, token file gone)
                log.warning("credential refresh failed: %s", exc)
                refreshed = False
            if not refreshed:
                raise expired_token_stop(info)

    def _observe_prepare(self, inp: ImageInput, prepared: set[int]) -> None:
        if id(inp) in prepared:
            return
        prepared.add(id(inp))
        self.metrics.observe_prepare(inp.prepare_s, transcoded=inp.transcoded, mode=inp.mode)

    async def _attempt(
        self, op: Operation, inp: ImageInput, item_id: str
    ) -> tuple[dict[str, Any], float]:
        """One request: a rate token, an in-flight slot, the call. Returns (response, s)."""
        if self.halt.error is not None:  # the run is stopping: no new attempt
            raise self.halt.error
        await self.preflight()  # once per run, before the first billed call
        control = self.controls[op.method]
        waited = await control.bucket.acquire()
        self.metrics.observe_token_wait(op.method, waited)
        async with self.inflight:
            self.metrics.attempt_started(op.method)
            t0 = self.clock.monotonic()
            try:
                response = await getattr(self.rekognition, op.method)(
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


class _Once:
    """Runs ``fn`` once, for the first caller; the others wait for it. A
    ``RunStopped`` it raises is raised to every later caller too."""

    def __init__(self, fn: Callable[[], Awaitable[None]]) -> None:
        self._fn = fn
        self._done = False
        self._error: RunStopped | None = None
        self._lock = anyio.Lock()

    async def __call__(self) -> None:
        if self._done:
            return
        async with self._lock:
            if self._error is not None:
                raise self._error
            if not self._done:
                try:
                    await self._fn()
                except RunStopped as exc:
                    self._error = exc
                    raise
                self._done = True


async def _quietly(fn: Callable[[], Awaitable[Any]]) -> None:
    """Cleanup of a staged copy must never fail the item; a lifecycle rule on the
    staging prefix is the backstop, so a failure here is only logged."""
    try:
        await fn()
    except Exception as exc:
        log.warning("staging cleanup failed: %s", exc)
