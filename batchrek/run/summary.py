"""The human summary of a run, from its metrics document: the same block for a run
that finished and for one that stopped (which says so first and last)."""

from __future__ import annotations

from typing import Any

from batchrek.observe import fmt, history_lines, verdict_lines

__all__ = ["format_summary"]


def format_summary(summary: dict[str, Any]) -> str:
    lat = summary.get("latency_ms", {})
    stopped = summary.get("stopped")
    billed = summary.get("billed")
    lines = [
        "batchrek summary" + (" (stopped before the end of the manifest)" if stopped else ""),
        f"  pairs:      {summary.get('ok', 0) + summary.get('failed', 0)} "
        f"(ok {summary.get('ok', 0)}, failed {summary.get('failed', 0)}, "
        f"skipped {summary.get('skipped', 0)})",
        f"  elapsed:    {fmt(summary.get('elapsed_s', 0))} s, "
        f"{fmt(summary.get('throughput_per_s', 0))} pairs/s",
        f"  requests:   {summary.get('requests', 0)} ("
        + (f"billed {billed}, " if billed is not None else "")
        + f"retries {summary.get('retries', 0)}, throttled {summary.get('throttled', 0)})",
        f"  latency ms: p50 {lat.get('p50', 0):.0f}, p90 {lat.get('p90', 0):.0f}, "
        f"p99 {lat.get('p99', 0):.0f}, max {lat.get('max', 0):.0f}",
        "  input:      " + ", ".join(f"{k} {v}" for k, v in summary.get("input", {}).items()),
    ]
    path = (summary.get("output") or {}).get("path")
    if path:
        lines.append(f"  output:     {path}")
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
    peers = summary.get("peers")
    if peers:
        lines.append(
            f"  peers:      shared the quota with {peers['others']} other process(es) through "
            f"{peers['where']} (at most {peers['most_at_once']} at once)"
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
