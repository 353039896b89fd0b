"""Why a run stopped before the end of its manifest: one value for every stop.

A stop is a signal (SIGTERM/SIGINT), a run-level failure (``RunStopped``: credentials,
access, the collection or model, an account limit), an outage past
``outage_timeout_s`` (``ServiceOutage``), an output that cannot be written
(``OutputFailed``) or a manifest found unusable mid-run (``NotAManifest``,
``ManifestUnreadable``). ``StopReason`` says which (``kind``), what happened
(``message``: the error's own text, which names the cause and, for a run-level
failure, its fix), what to do next (``fix``) and the process's exit code; the summary,
the metrics files and the last stderr line all come from it (``run.ending``).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any, Final

from batchrek.errors import (
    ManifestUnreadable,
    NotAManifest,
    OutputFailed,
    ServiceOutage,
    StopsTheRun,
)

__all__ = ["EXIT_SIGNAL", "StopReason", "kind_of", "stop_reason"]

EXIT_SIGNAL: Final = {signal.SIGINT: 130, signal.SIGTERM: 143}

RunEndingError = StopsTheRun | ManifestUnreadable
"""What can end a run on its own (``RunOutcome.error``)."""

# What to do next, by kind; the message before it names the cause.
_FIX: Final = {
    "not_a_manifest": "then rerun with the same -o: the records already written are kept",
    "manifest_unreadable": "make it readable, then rerun with the same -o: the records "
    "already written are kept",
    "run_level": "then rerun with the same -o: the pairs it stopped were not recorded, "
    "so the rerun does them",
    "outage": "nothing is wrong with the run: rerun later with the same -o to resume",
    "output_failed": "stopped billing. The records already written are kept: free space "
    "or fix the output's permissions, then rerun with the same -o to finish",
    "signal": "rerun with the same -o to finish",
}


@dataclass(frozen=True, slots=True)
class StopReason:
    """``kind``: ``signal``, ``not_a_manifest``, ``manifest_unreadable``,
    ``run_level``, ``outage`` or ``output_failed``."""

    kind: str
    message: str
    fix: str
    exit_code: int

    @property
    def is_signal(self) -> bool:
        return self.kind == "signal"

    def line(self) -> str:
        """The one line that says why the run stopped and what to do."""
        return f"{self.message}; {self.fix}"

    def as_dict(self) -> dict[str, Any]:
        """The metrics document's ``stop``."""
        return {
            "kind": self.kind,
            "exit_code": self.exit_code,
            "message": self.message,
            "fix": self.fix,
        }


def kind_of(error: RunEndingError | None) -> str:
    """The stop's kind for an error that ended the run (None: a signal)."""
    if error is None:
        return "signal"
    if isinstance(error, NotAManifest):
        return "not_a_manifest"
    if isinstance(error, ManifestUnreadable):
        return "manifest_unreadable"
    if isinstance(error, OutputFailed):
        return "output_failed"
    return "outage" if isinstance(error, ServiceOutage) else "run_level"


def stop_reason(
    error: RunEndingError | None, *, signum: signal.Signals | None = None
) -> StopReason | None:
    """Why the run stopped: a signal wins (its exit code is the process's), an error
    that came with it is named in its message; None: the run was not stopped."""
    if signum is not None:
        said = f"stopped by {signum.name}"
        if error is not None:
            said += f" (and {error})"
        return StopReason("signal", said, _FIX["signal"], EXIT_SIGNAL.get(signum, 143))
    if error is None:
        return None
    kind = kind_of(error)
    return StopReason(kind, str(error), _FIX[kind], error.exit_code)
