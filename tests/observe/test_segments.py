"""The output as a whole across reruns: each run a segment, totals over them, and a
run that wrote no metrics still counted from the output."""

from __future__ import annotations

from typing import Any

from batchrek.observe import with_history


def _run(ok: int, *, before: int = 0, requests: int | None = None, path: str = "o.jsonl",
         resumed: bool = True, failed: int = 0, retryable: int = 0) -> dict[str, Any]:  # fmt: skip
    return {
        "run": {"output": path, "started": "2026-01-01T00:00:00Z", "version": "1"},
        "ok": ok,
        "failed": failed,
        "failed_retryable": retryable,
        "skipped": before,
        "requests": ok if requests is None else requests,
        "throttled": 0,
        "retries": 0,
        "elapsed_s": 10.0,
        "output": {"path": path, "resumed": resumed, "pairs_done_before": before},
    }


def test_a_first_run_is_one_segment() -> None:
    doc = with_history(_run(100), None)
    assert (doc["output"]["totals"]["segments"], doc["output"]["totals"]["ok"]) == (1, 100)


def test_a_rerun_carries_the_earlier_segments_forward() -> None:
    first = with_history(_run(60), None)
    second = with_history(_run(40, before=60), first)
    totals = second["output"]["totals"]
    assert (totals["segments"], totals["ok"], totals["pairs_done"], totals["requests"]) == (
        2, 100, 100, 100,
    )  # fmt: skip


def test_the_top_level_stays_this_runs_own() -> None:
    first = with_history(_run(60), None)
    assert with_history(_run(40, before=60), first)["ok"] == 40


def test_a_run_killed_before_writing_metrics_is_counted_from_the_output() -> None:
    first = with_history(_run(60), None)
    # A second run added 25 pairs and was SIGKILLed; the third finds 85 done.
    third = with_history(_run(15, before=85), first)
    unrecorded = third["output"]["segments"][1]
    assert (unrecorded["recorded"], unrecorded["pairs_done"], unrecorded["requests"]) == (
        False, 25, None,
    )  # fmt: skip


def test_totals_over_an_unrecorded_run_say_they_are_incomplete() -> None:
    third = with_history(_run(15, before=85), with_history(_run(60), None))
    totals = third["output"]["totals"]
    assert (totals["pairs_done"], totals["requests"], totals["requests_complete"]) == (
        100, 75, False,
    )  # fmt: skip


def test_retryable_failures_are_not_done_pairs() -> None:
    first = with_history(_run(50, failed=10, retryable=4), None)
    assert first["output"]["segments"][0]["pairs_done"] == 56


def test_a_fresh_start_forgets_the_history() -> None:
    first = with_history(_run(60), None)
    fresh = with_history(_run(10, resumed=False), first)
    assert fresh["output"]["totals"]["segments"] == 1


def test_another_outputs_history_is_not_carried() -> None:
    first = with_history(_run(60, path="a.jsonl"), None)
    other = with_history(_run(10, path="b.jsonl"), first)
    assert other["output"]["totals"]["segments"] == 1


def test_an_output_with_fewer_pairs_than_its_history_starts_a_new_history() -> None:
    first = with_history(_run(60), None)
    replaced = with_history(_run(10, before=20), first)
    segments = replaced["output"]["segments"]
    assert [s["recorded"] for s in segments] == [False, True]
