"""Run control: a whole run as the CLI (or a user's script) wants it.

``run_batch`` does the work; this adds what happens around it: signals (the first
SIGTERM/SIGINT stops gracefully, a second at once), the dry-run path, the metrics
files and pushes, the human summary on stderr, and the exit code.

Exit codes: 0 every pair ok; 1 finished with failed pairs; 2 usage, configuration or
manifest error (nothing was billed where it could be checked first), or a run-level
failure (credentials, access, the collection or model, an account limit): fix and
rerun; 3 an endpoint was down for longer than outage_timeout_s: rerun later (a
Kubernetes Job may retry it); 74 an output could not be written during or at the end
of the run (billing stopped; what was written stays); 130 stopped by SIGINT; 143
stopped by SIGTERM.

A metrics file that cannot be written at the end does not lose the metrics: the
summary is printed as always, the metrics JSON goes to stdout instead, and the exit
code is 74 (unless a signal's code says more), so a Job retries and the rerun, which
skips every done pair, writes the file.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import anyio
import orjson

from batchrek.config import Settings
from batchrek.errors import (
    EXIT_OUTAGE,
    EXIT_OUTPUT_FAILED,
    BatchrekError,
    OutputFailed,
    RunStopped,
)
from batchrek.observe import fmt, history_lines, log_summary, verdict_lines, with_history
from batchrek.redact import redact_url
from batchrek.run import RunOutcome, run_batch
from batchrek.safefile import atomic_write

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_OUTAGE",
    "EXIT_OUTPUT_FAILED",
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


def export_metrics(settings: Settings, summary: dict[str, Any]) -> None:
    """--metrics-out, --metrics-textfile and --pushgateway; a failed push is logged,
    never fatal (the results are what matter). A file that cannot be written raises
    ``OSError`` (after the other exports were tried). Files are replaced atomically
    through a new temporary file (``batchrek.safefile``)."""
    failure: OSError | None = None
    if settings.metrics_out:
        try:
            atomic_write(
                settings.metrics_out, orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n"
            )
        except OSError as exc:
            failure = exc
    if settings.metrics_textfile or settings.pushgateway:
        from batchrek.observe import push, write_textfile

        if settings.metrics_textfile:
            try:
                write_textfile(settings.metrics_textfile, summary)
            except OSError as exc:
                failure = failure or exc
        if settings.pushgateway:
            grouping = {"shard": str(settings.shard_index or 0)}
            try:
                push(settings.pushgateway, summary, job=settings.job_name, grouping=grouping)
            except (OSError, ValueError) as exc:
                log.error("could not push metrics to %s: %s", redact_url(settings.pushgateway), exc)
    if failure is not None:
        raise failure


def format_summary(summary: dict[str, Any]) -> str:
    lat = summary.get("latency_ms", {})
    stopped = summary.get("stopped")
    lines = [
        "batchrek summary" + (" (stopped before the end of the manifest)" if stopped else ""),
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
            f"({ledger.get('entries_loaded', 0)} entries loaded in {ledger.get('load_s', 0):.2f} s"
            + (
                f"; caught up {ledger['caught_up']} records of the output the last run "
                "left out of the ledger)"
                if ledger.get("caught_up")
                else ")"
            )
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
    lines += _earlier_lines(summary.get("resume") or {})
    lines += history_lines(summary)
    lines += verdict_lines(summary.get("verdict") or {})
    if stopped:
        lines.append(_stopped_line(stopped))
    return "\n".join(lines)


def _earlier_lines(resume: dict[str, Any]) -> list[str]:
    """What earlier runs left in the output that decides this run's exit code."""
    lines = []
    redone = resume.get("failed_redone", 0)
    if redone:
        lines.append(f"  redone:     {redone} pairs that had failed in earlier runs")
    failed = resume.get("failed_earlier", 0)
    if failed:
        by_code = resume.get("failed_earlier_by_code") or {}
        codes = ", ".join(f"{k} {v}" for k, v in sorted(by_code.items()))
        lines.append(
            f"  earlier:    {failed} pairs failed in earlier runs ({codes}); they keep "
            "exit 1: after fixing the cause, rerun with --redo-failed (all) or "
            "--redo-failed=CODE,CODE"
        )
    return lines


def _stopped_line(stopped: dict[str, Any]) -> str:
    left = stopped.get("pairs_left")
    if left is None:
        count = "the pairs left are not counted (the manifest's size is not known)"
    else:
        count = f"{left} pairs left (estimated from the manifest's line count)"
    return f"stopped: {count}; rerun with the same -o to finish"


def _say_error(settings: Settings, message: str) -> None:
    """One error line after the summary: text on stderr, or a JSON log line."""
    if settings.log_format == "json":
        log.error("batchrek: %s", message)
    else:
        print(f"batchrek: error: {message}", file=sys.stderr, flush=True)


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
        try:
            await anyio.to_thread.run_sync(export_metrics, settings, summary)
            export_failed: OSError | None = None
        except OSError as exc:
            export_failed = exc
    done = outcome.summary
    nothing_ran = not (done.get("requests") or done.get("ok") or done.get("failed"))
    if not (isinstance(outcome.error, RunStopped) and nothing_ran):  # else: only its reason
        log_summary(summary, format_summary(summary), as_json=settings.log_format == "json")
    if isinstance(outcome.error, OutputFailed):
        _say_error(
            settings,
            f"{outcome.error}; stopped billing. The records already written are kept: "
            "fix it, then rerun with the same -o to finish",
        )
    elif outcome.error is not None:  # a run-level stop: its message says what to do
        _say_error(settings, str(outcome.error))
    if export_failed is not None:
        sys.stdout.buffer.write(orjson.dumps(summary) + b"\n")
        sys.stdout.flush()
        reason = export_failed.strerror or str(export_failed)
        _say_error(
            settings,
            f"cannot write the metrics ({reason}: {export_failed.filename or '?'}); "
            "they were printed to stdout instead",
        )
        return outcome.error.exit_code if outcome.error is not None else EXIT_OUTPUT_FAILED
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


def run_until_signalled(settings: Settings) -> int:
    """``run_from_settings`` under signal handling, as a process runs it."""
    return run_with_signals(lambda stop: run_from_settings(settings, stop=stop))


def run_with_signals(start: Callable[[anyio.Event], Awaitable[int]]) -> int:
    """Run ``start(stop_event)``; the first SIGTERM/SIGINT sets the event, a second
    one cancels at once (the output stays consistent: whole lines, fsync on close).

    A run-stopping ``BatchrekError`` is caught in the task group's body, so it
    surfaces as itself: ``run_batch`` has already unwrapped its own task groups."""
    received: list[signal.Signals] = []
    finished = False

    async def main() -> int:
        nonlocal finished
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
                finished = True
            except BatchrekError as exc:
                error = exc
            tg.cancel_scope.cancel()
        if error is not None:
            raise error
        return code

    code = anyio.run(main)
    if received and not finished:  # a second signal: no summary, but say so
        print(
            f"batchrek: stopped at once by a second {received[-1].name}; the pairs left "
            "are not counted; rerun with the same -o to finish",
            file=sys.stderr,
        )
    if received:
        return EXIT_SIGNAL.get(received[0], 143)
    return code
