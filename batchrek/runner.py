"""Run control: a whole run as the CLI (or a user's script) wants it.

``run_batch`` does the work; this adds what happens around it: signals (the first
SIGTERM/SIGINT stops gracefully, a second at once), the dry-run path, the metrics
files and pushes, the human summary on stderr, and the exit code.

Exit codes: 0 every pair ok; 1 finished with failed pairs; 2 usage, configuration or
manifest error; 130 stopped by SIGINT; 143 stopped by SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import anyio
import orjson

from batchrek.config import Settings
from batchrek.errors import BatchrekError
from batchrek.redact import redact_url
from batchrek.run import RunOutcome, run_batch

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_SIGNAL",
    "EXIT_USAGE",
    "export_current_view",
    "export_metrics",
    "format_summary",
    "run_from_settings",
    "run_until_signalled",
]

log = logging.getLogger("batchrek")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _atomic_write(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".batchrek-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def export_metrics(settings: Settings, summary: dict[str, Any]) -> None:
    """--metrics-out, --metrics-textfile and --pushgateway; a failed push is logged,
    never fatal (the results are what matter)."""
    if settings.metrics_out:
        _atomic_write(
            settings.metrics_out, orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n"
        )
    if settings.metrics_textfile or settings.pushgateway:
        from batchrek.observe import push, write_textfile

        if settings.metrics_textfile:
            write_textfile(settings.metrics_textfile, summary)
        if settings.pushgateway:
            grouping = {"shard": str(settings.shard_index or 0)}
            try:
                push(settings.pushgateway, summary, job=settings.job_name, grouping=grouping)
            except (OSError, ValueError) as exc:
                log.error("could not push metrics to %s: %s", redact_url(settings.pushgateway), exc)


def format_summary(summary: dict[str, Any]) -> str:
    lat = summary.get("latency_ms", {})
    lines = [
        "batchrek summary",
        f"  pairs:      {summary.get('ok', 0) + summary.get('failed', 0)} "
        f"(ok {summary.get('ok', 0)}, failed {summary.get('failed', 0)}, "
        f"skipped {summary.get('skipped', 0)})",
        f"  elapsed:    {summary.get('elapsed_s', 0):.1f} s, "
        f"{summary.get('throughput_per_s', 0):.1f} pairs/s",
        f"  requests:   {summary.get('requests', 0)} "
        f"(retries {summary.get('retries', 0)}, throttled {summary.get('throttled', 0)})",
        f"  latency ms: p50 {lat.get('p50', 0):.0f}, p90 {lat.get('p90', 0):.0f}, "
        f"p99 {lat.get('p99', 0):.0f}, max {lat.get('max', 0):.0f}",
        "  input:      " + ", ".join(f"{k} {v}" for k, v in summary.get("input", {}).items()),
    ]
    ledger = summary.get("ledger")
    if ledger:
        lines.append(
            f"  ledger:     new {ledger.get('new', 0)}, changed {ledger.get('changed', 0)}, "
            f"reused {ledger.get('reused', 0)}, unchanged {ledger.get('unchanged', 0)} "
            f"({ledger.get('entries_loaded', 0)} entries loaded in {ledger.get('load_s', 0):.2f} s)"
        )
    not_listed = summary.get("listing_skipped") or {}
    if not_listed:
        lines.append(
            f"  not listed: {sum(not_listed.values())} files ("
            + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in not_listed.items())
            + ")"
        )
    failed_by = summary.get("failed_by_code") or {}
    if failed_by:
        lines.append(
            "  failed by code: " + ", ".join(f"{k} {v}" for k, v in sorted(failed_by.items()))
        )
    verdict = summary.get("verdict") or {}
    if verdict:
        lines.append(f"  limited by: {verdict.get('limiter')}: {verdict.get('explanation')}")
        if verdict.get("flag"):
            lines.append(f"  try: {verdict['flag']}")
    return "\n".join(lines)


async def run_from_settings(settings: Settings, *, stop: anyio.Event | None = None) -> int:
    if settings.dry_run:
        from batchrek.run import dry_run, format_plan

        plan = await dry_run(settings)
        print(format_plan(plan, price_per_image=settings.price_per_image), file=sys.stderr)
        return 0
    outcome: RunOutcome = await run_batch(settings, stop=stop)
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(export_metrics, settings, outcome.summary)
    print(format_summary(outcome.summary), file=sys.stderr)
    return outcome.exit_code


def export_current_view(
    outputs: Sequence[str], dest: str, *, s3_endpoint_url: str | None, region: str | None
) -> int:
    """``batchrek export``: merge the outputs, write the tables, say what was written."""
    from batchrek.export import export_current

    done = anyio.run(
        partial(export_current, outputs, dest, s3_endpoint_url=s3_endpoint_url, region=region)
    )
    print(
        f"batchrek export: {done.records} records read, {done.pairs} current results, "
        f"{done.label_rows} label rows",
        file=sys.stderr,
    )
    for path in done.files:
        print(path)
    return EXIT_OK


def run_until_signalled(settings: Settings) -> int:
    """``run_from_settings`` under signal handling, as a process runs it."""
    return run_with_signals(lambda stop: run_from_settings(settings, stop=stop))


def run_with_signals(start: Callable[[anyio.Event], Awaitable[int]]) -> int:
    """Run ``start(stop_event)``; the first SIGTERM/SIGINT sets the event, a second
    one cancels at once (the output stays consistent: whole lines, fsync on close).

    A run-stopping ``BatchrekError`` is caught in the task group's body, so it
    surfaces as itself: ``run_batch`` has already unwrapped its own task groups."""
    received: list[signal.Signals] = []

    async def main() -> int:
        stop = anyio.Event()
        code = EXIT_FAILED  # replaced by the run's own code unless a 2nd signal cut it short
        error: BatchrekError | None = None
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for signum in signals:
                        received.append(signal.Signals(signum))
                        if len(received) == 1:
                            log.warning("%s: stopping; finishing in-flight calls", signum.name)
                            stop.set()
                        else:
                            log.warning("%s again: stopping now", signum.name)
                            tg.cancel_scope.cancel()

            tg.start_soon(watch)
            try:
                code = await start(stop)
            except BatchrekError as exc:
                error = exc
            tg.cancel_scope.cancel()
        if error is not None:
            raise error
        return code

    code = anyio.run(main)
    if received:
        return EXIT_SIGNAL.get(received[0], 143)
    return code
