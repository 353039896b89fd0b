"""How a run ended: its outcome, and what the summary says about the output's earlier
runs (failures that keep exit 1) and about a stop (the pairs left)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from batchrek.output import ResumeState
from batchrek.run.stop import RunEndingError, kind_of

__all__ = ["RunOutcome", "outcome"]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended. ``failed_pairs`` counts this run's failures and the permanent
    ones recorded earlier in the same output (they keep exit 1 until redone).
    ``interrupted``: a stop was asked for (a signal). ``error``: what stopped the run
    on its own (a failed output write, exit 74; a run-level failure, exit 2; an outage
    past ``outage_timeout_s``, exit 3; the manifest found unusable mid-run, exit 2).
    ``pairs_left``: when stopped, the pairs a
    rerun still has to do, estimated from the manifest's line count (None: unknown)."""

    summary: dict[str, Any]
    failed_pairs: int
    interrupted: bool
    error: RunEndingError | None = None
    pairs_left: int | None = None

    @property
    def stopped(self) -> bool:
        """The run ended before the end of the manifest."""
        return self.interrupted or self.error is not None

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return self.error.exit_code
        return 1 if self.failed_pairs else 0


def outcome(
    summary: dict[str, Any],
    *,
    failed: int,
    resume: ResumeState | None,
    total_pairs: int | None,
    interrupted: bool,
    error: RunEndingError | None,
) -> RunOutcome:
    """The outcome; adds ``resume`` (what the output held before) and, for a stopped
    run, ``stopped`` to the summary."""
    if resume is not None:
        summary["resume"] = {
            "done_earlier": resume.done,
            "failed_earlier": resume.failed,
            "failed_earlier_by_code": dict(resume.failed_by_code),
            "failed_redone": resume.failed_redone,
        }
    left = None
    if interrupted or error is not None:
        left = _pairs_left(summary, total_pairs)
        summary["stopped"] = {
            "reason": kind_of(error),
            "error": str(error) if error is not None else None,
            "pairs_left": left,
            "pairs_left_is_estimate": left is not None,
        }
    return RunOutcome(
        summary=summary,
        failed_pairs=failed + (resume.failed if resume is not None else 0),
        interrupted=interrupted,
        error=error,
        pairs_left=left,
    )


def _pairs_left(summary: dict[str, Any], total_pairs: int | None) -> int | None:
    """Pairs a rerun still has to do: this shard's estimated pairs (the manifest's
    line count; header, blank and comment lines make it a little high) less the pairs
    finished, skipped or reused. None when the manifest's size is unknown (s3://,
    gzip, a folder)."""
    if total_pairs is None:
        return None
    finished = sum(int(summary.get(k, 0)) for k in ("ok", "failed", "skipped", "deduplicated"))
    return max(0, total_pairs - finished)
