"""How a run ended, as ``run_batch`` returns it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from batchrek.errors import RunStopped

__all__ = ["RunOutcome"]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """The summary, the failed pairs (this run's and earlier ones'), whether a signal
    stopped it, and ``stopped``: the run-level failure that stopped it early (exit 2,
    or 3 for an outage), if one did."""

    summary: dict[str, Any]
    failed_pairs: int
    interrupted: bool
    stopped: RunStopped | None = None

    @property
    def exit_code(self) -> int:
        if self.stopped is not None:
            return self.stopped.exit_code
        return 1 if self.failed_pairs else 0
