"""The output as a whole, across reruns: each run on the same output is a segment.

A resumed run's summary describes only what that run did (the top level of the
``--metrics-out`` document). ``with_history`` adds an ``output`` section that
describes the output as a whole: every segment listed, and totals over them.

Where the history comes from: the previous ``--metrics-out`` document at the same
path, when it describes the same output. No other file is written next to the
output (an S3 prefix, a read-only folder of results...); the metrics file is the
one the user asked for.

A segment that wrote no metrics (SIGKILLed, OOM-killed, or run without
``--metrics-out``) still left its records in the output, and resume counts them:
the pairs already done when this run started (``pairs_done_before``) that no listed
segment accounts for become one ``"recorded": false`` segment, with its pairs
counted from the output and its requests unknown (null), so totals never claim
more than they know. A run that started afresh (``--no-resume``), or an output with
fewer pairs than the history says (replaced by hand), starts a new history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from batchrek.observe.numbers import fmt_count

__all__ = ["history_lines", "with_history"]

_COUNTS = ("ok", "failed", "skipped", "requests", "throttled", "retries")


def with_history(
    summary: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    *,
    interrupted: bool = False,
    exit_code: int | None = None,
) -> dict[str, Any]:
    """``summary`` with ``output``: {path, pairs_done_before, segments, totals}."""
    out = dict(summary)
    state: Mapping[str, Any] = summary.get("output") or {}
    path = state.get("path") or (summary.get("run") or {}).get("output")
    before = int(state.get("pairs_done_before") or 0)
    segments: list[dict[str, Any]] = []
    if state.get("resumed", True) and previous is not None:
        segments = _earlier(previous, path)
    accounted = sum(int(s.get("pairs_done") or 0) for s in segments)
    if before < accounted:  # the output lost pairs since: the history no longer holds
        segments, accounted = [], 0
    if before > accounted:
        segments.append(
            {
                "recorded": False,
                "pairs_done": before - accounted,
                **dict.fromkeys(_COUNTS),
                "note": "a run that wrote no metrics (killed, or without --metrics-out); "
                "its pairs are counted from the output, its requests are unknown",
            }
        )
    this = _segment(summary, interrupted=interrupted, exit_code=exit_code)
    # What this run added to the done pairs: ok, and failures that are permanent; a
    # retryable failure is redone by the next run, so it does not count.
    failed = int(summary.get("failed") or 0) - int(summary.get("failed_retryable") or 0)
    this["pairs_done"] = int(summary.get("ok") or 0) + failed
    segments.append(this)
    out["output"] = {
        **state,
        "path": path,
        "segments": segments,
        "totals": _totals(segments),
    }
    return out


def _earlier(previous: Mapping[str, Any], path: Any) -> list[dict[str, Any]]:
    history: Mapping[str, Any] = previous.get("output") or {}
    same = history.get("path", (previous.get("run") or {}).get("output")) == path
    listed: Sequence[Any] = history.get("segments") or []
    if not same or not isinstance(listed, list):
        return []
    return [dict(s) for s in listed if isinstance(s, Mapping)]


def _segment(
    summary: Mapping[str, Any], *, interrupted: bool, exit_code: int | None
) -> dict[str, Any]:
    run: Mapping[str, Any] = summary.get("run") or {}
    return {
        "recorded": True,
        "started": run.get("started"),
        "elapsed_s": summary.get("elapsed_s"),
        "version": run.get("version"),
        **{k: summary.get(k) for k in _COUNTS},
        "ended": "interrupted" if interrupted else "finished",
        "exit_code": exit_code,
    }


def _totals(segments: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    totals: dict[str, Any] = {"segments": len(segments)}
    for key in _COUNTS:
        values = [s.get(key) for s in segments]
        known = [int(v) for v in values if v is not None]
        # A total over segments some of which are unknown is a lower bound: say so.
        totals[key] = sum(known)
        if len(known) < len(values):
            totals[f"{key}_complete"] = False
    totals["pairs_done"] = sum(int(s.get("pairs_done") or 0) for s in segments)
    totals["elapsed_s"] = round(sum(float(s.get("elapsed_s") or 0.0) for s in segments), 3)
    return totals


def history_lines(summary: Mapping[str, Any]) -> list[str]:
    """The summary's line for the output as a whole, once there is more than this run."""
    output: Mapping[str, Any] = summary.get("output") or {}
    totals: Mapping[str, Any] = output.get("totals") or {}
    if int(totals.get("segments") or 0) < 2:
        return []
    known = "" if totals.get("requests_complete", True) else " (some runs unrecorded)"
    return [
        f"  all runs:   {fmt_count(totals.get('pairs_done') or 0)} pairs done over "
        f"{totals['segments']} runs, {fmt_count(totals.get('requests') or 0)} requests{known}"
    ]
