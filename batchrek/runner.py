"""Run control: a whole run as the CLI (or a user's script) wants it.

``run_batch`` does the work; this adds what happens around it: signals (the first
SIGTERM/SIGINT stops gracefully, a second at once), the dry-run path, the metrics
files and pushes, the human summary on stderr, and the exit code.

Exit codes: 0 every pair ok; 1 finished with failed pairs; 2 usage, configuration or
manifest error, or a run-level failure (credentials, access, the collection or model,
an output that cannot be written): fix and rerun; 3 an endpoint was down for longer
than outage_timeout_s: rerun later (a Kubernetes Job may retry it); 130 stopped by
SIGINT; 143 stopped by SIGTERM.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import anyio
import orjson

from batchrek.config import Settings
from batchrek.errors import EXIT_OUTAGE, BatchrekError, RunStopped
from batchrek.observe import fmt, history_lines, log_summary, verdict_lines, with_history
from batchrek.redact import redact_url
from batchrek.run import RunOutcome, run_batch

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_OUTAGE",
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
    """Temp file + rename. Created with mode 0666 less the umask, like every other
    file batchrek writes (mkstemp's 0600 would hide metrics from a node exporter or a
    dashboard user)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".batchrek-{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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
        f"  elapsed:    {fmt(summary.get('elapsed_s', 0))} s, "
        f"{fmt(summary.get('throughput_per_s', 0))} pairs/s",
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
    for warning in summary.get("warnings") or ():
        lines.append(f"  warning:    {warning}")
    for endpoint, outage in (summary.get("outages") or {}).items():
        lines.append(
            f"  outages:    {endpoint}: paused {outage['trips']} time(s), "
            f"{outage['probes']} probe(s)"
        )
    failed_by = summary.get("failed_by_code") or {}
    if failed_by:
        lines.append(
            "  failed by code: " + ", ".join(f"{k} {v}" for k, v in sorted(failed_by.items()))
        )
    lines += history_lines(summary)
    lines += verdict_lines(summary.get("verdict") or {})
    return "\n".join(lines)


async def run_from_settings(settings: Settings, *, stop: anyio.Event | None = None) -> int:
    if settings.dry_run:
        from batchrek.run import dry_run, format_plan

        plan = await dry_run(settings)
        # stdout: the plan is the command's output, to pipe or save.
        print(format_plan(plan, price_per_image=settings.price_per_image), flush=True)
        return 0
    outcome: RunOutcome = await run_batch(settings, stop=stop)
    with anyio.CancelScope(shield=True):
        previous = await anyio.to_thread.run_sync(_previous_metrics, settings)
        summary = with_history(
            outcome.summary,
            previous,
            interrupted=outcome.interrupted,
            exit_code=None if outcome.interrupted else outcome.exit_code,
        )
        await anyio.to_thread.run_sync(export_metrics, settings, summary)
    done = outcome.summary
    nothing_ran = not (done.get("requests") or done.get("ok") or done.get("failed"))
    if outcome.stopped is None or not nothing_ran:  # a stop before any call: only its reason
        log_summary(summary, format_summary(summary), as_json=settings.log_format == "json")
    if outcome.stopped is not None:  # the last line says why, and what to do
        _say_stopped(outcome.stopped, as_json=settings.log_format == "json")
    return outcome.exit_code


def _previous_metrics(settings: Settings) -> dict[str, Any] | None:
    """The earlier segments' history: the --metrics-out document already at that path
    (``observe.with_history`` checks that it describes the same output)."""
    if not settings.metrics_out or not settings.resume:
        return None
    try:
        with open(settings.metrics_out, "rb") as fh:
            data = orjson.loads(fh.read())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        log.warning("cannot read the earlier %s (%s): the history starts here",
                    settings.metrics_out, exc)  # fmt: skip
        return None
    return data if isinstance(data, dict) else None


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


def _say_stopped(error: RunStopped, *, as_json: bool) -> None:
    if as_json:  # every stderr line is JSON
        log.error("batchrek: %s", error)
    else:
        print(f"batchrek: error: {error}", file=sys.stderr)


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
