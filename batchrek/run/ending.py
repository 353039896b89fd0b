"""The end of a run, built in one place for a run that finished and for every stop.

``end_of_run`` takes the run's outcome and the signal that stopped it (if one did)
and gives the ``Ending``: the metrics document (with the output's history and
``stop``, the ``StopReason`` as a dict or null), the summary block, the one line that
says why the run stopped and what to do, and the exit code. The runner only writes
them out (metrics files, stderr) and returns the code.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batchrek.observe import with_history
from batchrek.run.outcome import RunOutcome
from batchrek.run.stop import StopReason, stop_reason
from batchrek.run.summary import format_summary

__all__ = ["Ending", "end_of_run"]


@dataclass(frozen=True, slots=True)
class Ending:
    """``summary``: the metrics document. ``stop``: why the run stopped (None: it
    reached the end of the manifest). ``ran``: anything was called or recorded; a
    run-level stop before that (the preflight's) shows only its reason line."""

    summary: dict[str, Any]
    stop: StopReason | None
    exit_code: int
    ran: bool

    @property
    def shows_summary(self) -> bool:
        return self.ran or self.stop is None or self.stop.kind not in ("run_level", "outage")

    def text(self) -> str:
        """The summary block (a stopped run's says so first and last)."""
        return format_summary(self.summary)

    def reason_line(self) -> str | None:
        """Why the run stopped and what to do; before anything ran, the error alone
        (the preflight's message names the fix and nothing needs finishing)."""
        if self.stop is None:
            return None
        return self.stop.line() if self.ran else self.stop.message


def end_of_run(
    outcome: RunOutcome,
    *,
    signum: signal.Signals | None = None,
    previous: Mapping[str, Any] | None = None,
) -> Ending:
    """The ending of ``outcome``; ``signum``: the signal that asked the run to stop
    (only used if it did stop); ``previous``: the earlier metrics document at the
    same path, for the output's history (``observe.with_history``)."""
    stop = stop_reason(outcome.error, signum=signum if outcome.interrupted else None)
    if stop is None and outcome.interrupted:  # stopped by a caller's event, no signal
        stop = stop_reason(None, signum=signal.SIGTERM)
    code = stop.exit_code if stop is not None else outcome.exit_code
    summary = with_history(
        outcome.summary, previous, interrupted=outcome.interrupted, exit_code=code
    )
    summary["stop"] = stop.as_dict() if stop is not None else None
    stopped = summary.get("stopped")
    if stop is not None and isinstance(stopped, dict):
        summary["stopped"] = {**stopped, "reason": stop.kind}
    done = outcome.summary
    ran = bool(done.get("requests") or done.get("ok") or done.get("failed"))
    return Ending(summary=summary, stop=stop, exit_code=code, ran=ran)
