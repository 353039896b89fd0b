"""Open (and close) everything a run talks to: AWS clients, the sink, the image pool.

Credentials come from botocore's own chain inside one aioboto3 Session (environment,
profiles, SSO, web identity for pods, instance roles). The session keeps botocore's
refreshable credentials, so an hour-long IRSA token is renewed in place: nothing here
copies keys out of it.

Downloads and S3 part uploads get
one ``call.TransientRetry`` sharing the run's circuit breakers; an S3 output gets its
local spool, and what a stopped run left in it is uploaded first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio

from batchrek.call import (
    Operation,
    RetryPolicy,
    TransientRetry,
    botocore_config_kwargs,
    classify,
    freeze_user_agent,
    is_outage,
    open_lean_client,
)
from batchrek.clock import Clock, SystemClock
from batchrek.config import Settings
from batchrek.errors import ConfigError, OutputFailed, ServiceOutage
from batchrek.ledger import Ledger, LedgerSink, open_ledger, repair_torn_tail
from batchrek.output import (
    JsonlFileSink,
    ResumeState,
    S3PartSink,
    Sink,
    Spool,
    abort_stale_uploads,
    check_paths,
    check_s3_output,
    load_resume,
    recover_spool,
)
from batchrek.prepare import (
    BucketRegions,
    ByteBudget,
    Fetcher,
    ImagePool,
    Preparer,
    Stager,
    make_http_session,
)
from batchrek.run.gctune import settled_heap
from batchrek.run.halt import Halt, Safeguards
from batchrek.run.lazyclient import LazyClient

__all__ = ["Services", "output_for_shard"]

log = logging.getLogger("batchrek")


def output_for_shard(output: str, index: int | None, count: int | None) -> str:
    """Each shard owns its own output: ``out.jsonl`` → ``out.shard-0003-of-0008.jsonl``.

    An S3 prefix stays as it is: the sink names its part files by shard.
    """
    if not count or count <= 1 or output.startswith("s3://"):
        return output
    root, ext = os.path.splitext(output)
    return f"{root}.shard-{index or 0:04d}-of-{count:04d}{ext or '.jsonl'}"


@dataclass
class Services:
    region: str
    session: Any
    rekognition: Any
    s3: Any
    sink: Sink
    resume: ResumeState | None
    preparer: Preparer
    output: str
    rekognition_endpoint: str
    ledger: Ledger | None = None
    ledger_sink: LedgerSink | None = None
    ledger_load_s: float = 0.0

    @classmethod
    async def open(
        cls,
        settings: Settings,
        stack: AsyncExitStack,
        *,
        ops: tuple[Operation, ...] | None = None,
        clock: Clock | None = None,
        guards: Safeguards | None = None,
    ) -> Services:
        """Open everything; before the output is read (resume rewrites it) or anything
        is billed, refuse an output or metrics path that cannot be used. ``ops`` given:
        a real run (an S3 output is spooled, and what a stopped run left is uploaded)."""
        clock = clock or SystemClock()
        guards = guards or Safeguards.for_run(settings, clock)
        breakers, halt = guards.breakers, guards.halt
        output = output_for_shard(settings.output, settings.shard_index, settings.shard_count)
        if not settings.dry_run:
            exports = (
                ("--metrics-out", settings.metrics_out or ""),
                ("--metrics-textfile", settings.metrics_textfile or ""),
            )
            await anyio.to_thread.run_sync(
                lambda: check_paths(output, manifest=settings.manifest, exports=exports)
            )
        import aioboto3  # here: other commands (emulator, report, demo set-up) never need it
        from aiobotocore.config import AioConfig

        session = aioboto3.Session(profile_name=settings.profile, region_name=settings.region)
        region = settings.region or session.region_name or "us-east-1"
        config = AioConfig(**botocore_config_kwargs(settings.concurrency))
        rekognition = await stack.enter_async_context(
            session.client(
                "rekognition",
                region_name=region,
                endpoint_url=settings.endpoint_url,
                config=config,
            )
        )
        freeze_user_agent(rekognition)
        endpoint = str(rekognition.meta.endpoint_url)
        retry = TransientRetry(
            RetryPolicy(max_attempts=settings.max_attempts, deadline_s=settings.item_deadline_s),
            breakers,
            clock=clock,
        )
        if settings.request_path == "lean":
            rekognition = await open_lean_client(
                rekognition, stack, concurrency=settings.concurrency
            )
        s3_clients: dict[str, Any] = {}
        s3_lock = anyio.Lock()

        async def s3_for_region(bucket_region: str) -> Any:
            async with s3_lock:
                if bucket_region not in s3_clients:
                    s3_clients[bucket_region] = await stack.enter_async_context(
                        session.client(
                            "s3",
                            region_name=bucket_region,
                            endpoint_url=settings.s3_endpoint_url,
                            config=config,
                        )
                    )
                return s3_clients[bucket_region]

        # Made on its first call: a run over local files with a local output never
        # pays for S3's service model.
        s3: Any = LazyClient(lambda: s3_for_region(region), name=f"s3 {region}")
        policy = settings.address_policy()
        http = await stack.enter_async_context(
            make_http_session(policy, connections=settings.concurrency)
        )
        pool = ImagePool(accepted=settings.accepted_formats())
        stack.callback(pool.close)
        fetcher = Fetcher(
            s3_for_region=s3_for_region,
            http=http,
            max_bytes=settings.max_source_bytes,
            allow_http=settings.allow_http,
            http_timeout_s=settings.http_timeout_s,
            budget=ByteBudget(settings.source_budget_bytes()),
            policy=policy,
            retry=retry,
        )
        stack.callback(fetcher.close)
        stager = None
        if settings.oversize == "stage":
            if not settings.staging_bucket:
                raise ConfigError("oversize = stage needs staging_bucket = s3://bucket/prefix/")
            stager = Stager(s3, settings.staging_bucket)
        preparer = Preparer(
            region=region,
            fetcher=fetcher,
            regions=BucketRegions(s3, default_region=region, pinned=settings.bucket_regions),
            pool=pool,
            oversize=settings.oversize,
            stager=stager,
        )
        s3_endpoint = settings.s3_endpoint_url or f"https://s3.{region}.amazonaws.com"
        if output.startswith("s3://") and not settings.dry_run:
            await check_s3_output(
                s3, output, shard=settings.shard_index or 0, retry=retry, endpoint=s3_endpoint
            )
        spool: Spool | None = None
        if output.startswith("s3://") and ops is not None and not settings.dry_run:
            spool = Spool(settings.spool_root(), output, f"{settings.shard_index or 0:04d}")
            required = settings.spool_dir is not None
            if await anyio.to_thread.run_sync(partial(spool.open, required=required)):
                stack.callback(spool.close)
                await recover_spool(s3, output, spool, retry=retry, endpoint=s3_endpoint)
            else:
                log.warning(
                    "cannot write the spool folder %s: running without it (a kill re-bills "
                    "the open part file); set spool_dir to a writable local folder",
                    spool.dir,
                )
                spool = None
        ledger_run = None
        if settings.ledger:
            if not output.startswith("s3://") and not settings.dry_run:
                # Appended to, never truncated (the ledger points into it); a torn last
                # line is cut so the next record starts where its entry says.
                await anyio.to_thread.run_sync(repair_torn_tail, output)
            # The output's records past the ledger's coverage (a killed run's, the
            # spool's part uploaded above) are indexed before anything is billed.
            ledger_run = await open_ledger(
                settings.ledger,
                s3=s3,
                ops=settings.build_operations(),
                shard=settings.shard_index or 0,
                output=output,
                write=not settings.dry_run,
            )
            if output.startswith("s3://") and not settings.dry_run:
                # The resume would abort the uploads a killed run left open; a ledger
                # run never loads it, so it does that part itself (their records are in
                # the spool, recovered above, or are billed again: never lost). Its own
                # shard's only, even unsharded: a part another shard label wrote is
                # that shard's to abort (its own rerun does).
                aborted = await abort_stale_uploads(s3, output, shard=settings.shard_index or 0)
                if aborted:
                    log.info("aborted %d part upload(s) a stopped run left open", aborted)
        resume: ResumeState | None = None
        # With a ledger, the ledger is the resume: it knows every durable record of
        # every earlier run, so the output is never read back.
        if settings.resume and not settings.dry_run and ledger_run is None:
            sharded = (settings.shard_count or 1) > 1
            resume = await load_resume(
                output,
                s3=s3,
                shard=(settings.shard_index or 0) if sharded else None,
                redo_failed=settings.redo_codes(),
            )
        sink: Sink
        if output.startswith("s3://"):
            sink = S3PartSink(
                s3,
                output,
                shard=settings.shard_index or 0,
                part_records=settings.part_records,
                run_stamp=ledger_run.part_stamp if ledger_run is not None else None,
                part_seconds=settings.part_seconds,
                clock=clock,
                retry=retry,
                endpoint=s3_endpoint,
                spool=spool,
                on_stall=_stall_reporter(halt, spool),
            )
        else:
            sink = JsonlFileSink(output, truncate=not settings.resume and ledger_run is None)
        ledger_sink = None
        if ledger_run is not None and not settings.dry_run:
            sink = ledger_sink = LedgerSink(sink, ledger_run.segment)
        stack.push_async_callback(sink.aclose)
        stack.enter_context(settled_heap())  # last: what start-up made is frozen
        return cls(
            region=region,
            session=session,
            rekognition=rekognition,
            s3=s3,
            sink=sink,
            resume=resume,
            preparer=preparer,
            output=output,
            rekognition_endpoint=endpoint,
            ledger=ledger_run.ledger if ledger_run is not None else None,
            ledger_sink=ledger_sink,
            ledger_load_s=ledger_run.load_s if ledger_run is not None else 0.0,
        )


def _stall_reporter(halt: Halt | None, spool: Spool | None) -> Callable[[BaseException, str], None]:
    """What the S3 sink calls once when a part can never be uploaded: stop the run.
    It is the output that failed (``OutputFailed``, exit 74, as a full disk for a file
    output), unless S3 was down for longer than ``outage_timeout_s`` (exit 3); either
    way the records wait in the spool and nothing is lost."""

    def stalled(exc: BaseException, where: str) -> None:
        if halt is None:
            return
        kept = f"the results wait in the spool {spool.dir}" if spool is not None else "kept"
        note = f"Nothing is lost: {kept} (a rerun on this machine uploads them first)"
        if isinstance(exc, ServiceOutage):  # its message says a rerun resumes
            where_kept = f" (the results wait in the spool {spool.dir})" if spool else ""
            halt(ServiceOutage(f"cannot write the output {where}: {exc}{where_kept}"))
            return
        info = classify(exc)
        if info.retryable:
            why = "failing" if is_outage(info) else "slowing down"
            note = f"S3 kept {why} after every retry. {note}"
        halt(OutputFailed(where, RuntimeError(f"{info.code}: {info.message}"), note=note))

    return stalled
