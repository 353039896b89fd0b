"""Why a run stopped, as one value: each kind of stop gets its kind, its exit code
(the README's table) and a line that says what to do; a signal wins."""

from __future__ import annotations

import signal

import pytest

from batchrek.errors import (
    ManifestUnreadable,
    NotAManifest,
    OutputFailed,
    RunStopped,
    ServiceOutage,
    StopsTheRun,
)
from batchrek.run import RunOutcome, end_of_run, stop_reason

CASES: list[tuple[StopsTheRun | ManifestUnreadable, str, int, str]] = [
    (NotAManifest("m.txt is not a manifest"), "not_a_manifest", 2, "rerun with the same -o"),
    (ManifestUnreadable("stream broke"), "manifest_unreadable", 2, "make it readable"),
    (RunStopped("access denied: grant X"), "run_level", 2, "the rerun does them"),
    (ServiceOutage("down for 600 s"), "outage", 3, "rerun later with the same -o"),
    (OutputFailed("out.jsonl", OSError(28, "No space left")), "output_failed", 74, "free space"),
]


@pytest.mark.parametrize(("error", "kind", "code", "fix"), CASES, ids=[c[1] for c in CASES])
def test_each_stop_has_its_kind_exit_code_and_what_to_do(
    error: StopsTheRun | ManifestUnreadable, kind: str, code: int, fix: str
) -> None:
    reason = stop_reason(error)
    assert reason is not None
    assert (reason.kind, reason.exit_code, reason.message) == (kind, code, str(error))
    assert reason.line().startswith(str(error))
    assert fix in reason.line()


def test_a_signal_wins_and_names_the_error_that_came_with_it() -> None:
    reason = stop_reason(RunStopped("denied"), signum=signal.SIGINT)
    assert reason is not None
    assert (reason.kind, reason.exit_code, reason.message) == (
        "signal",
        130,
        "stopped by SIGINT (and denied)",
    )


def test_a_run_that_was_not_stopped_has_no_reason() -> None:
    assert stop_reason(None) is None


def _outcome(**kwargs: object) -> RunOutcome:
    summary = {"ok": 3, "requests": 3, "output": {"path": "out.jsonl"}}
    return RunOutcome(summary=summary, failed_pairs=0, **kwargs)  # type: ignore[arg-type]


def test_a_finished_run_ends_with_stop_null_and_its_own_code() -> None:
    ending = end_of_run(_outcome(interrupted=False))
    assert (ending.summary["stop"], ending.exit_code, ending.reason_line()) == (None, 0, None)


def test_every_stop_ends_with_the_summary_the_reason_and_stop_in_the_metrics() -> None:
    ending = end_of_run(_outcome(interrupted=False, error=NotAManifest("m is not a manifest")))
    assert ending.summary["stop"]["kind"] == "not_a_manifest"
    assert (ending.exit_code, ending.shows_summary) == (2, True)
    assert "  output:     out.jsonl" in ending.text()
    assert (ending.reason_line() or "").startswith("m is not a manifest; then rerun")


def test_a_run_level_stop_before_anything_ran_says_only_its_error() -> None:
    outcome = RunOutcome(
        summary={"requests": 0}, failed_pairs=0, interrupted=False, error=RunStopped("no model")
    )
    ending = end_of_run(outcome)
    assert (ending.shows_summary, ending.reason_line(), ending.exit_code) == (
        False,
        "no model",
        2,
    )
