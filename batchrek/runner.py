"""A whole run as the CLI (or a user's script) wants it: run, export, summarise.

``run_batch`` does the work; this adds what happens around it: the dry-run path, the
metrics files and pushes, and the human summary on stderr.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from typing import Any

import anyio
import orjson

from batchrek.config import Settings
from batchrek.run.pipeline import RunOutcome, run_batch

__all__ = ["export_metrics", "format_summary", "run_from_settings"]

log = logging.getLogger("batchrek")


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
        from batchrek.observe.prometheus import push, write_textfile

        if settings.metrics_textfile:
            write_textfile(settings.metrics_textfile, summary)
        if settings.pushgateway:
            grouping = {"shard": str(settings.shard_index or 0)}
            try:
                push(settings.pushgateway, summary, job=settings.job_name, grouping=grouping)
            except OSError as exc:
                log.error("could not push metrics to %s: %s", settings.pushgateway, exc)


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
        from batchrek.run.dryrun import dry_run, format_plan

        plan = await dry_run(settings)
        print(format_plan(plan, price_per_image=settings.price_per_image), file=sys.stderr)
        return 0
    outcome: RunOutcome = await run_batch(settings, stop=stop)
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(export_metrics, settings, outcome.summary)
    print(format_summary(outcome.summary), file=sys.stderr)
    return outcome.exit_code
