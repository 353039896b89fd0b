"""The run's one stop switch for failures that make going on pointless.

A worker (a run-level answer, an outage past its timeout) or the output (an S3 part
that cannot be uploaded) trips it with a ``RunStopped``; the first one wins. The
pipeline then stops as it does on SIGTERM: no new item starts, no new attempt
starts, in-flight calls finish (within the grace period) and are written, and the
run ends with the error's exit code and message.
"""

from __future__ import annotations

import logging

import anyio

from batchrek.errors import RunStopped

__all__ = ["Halt"]

log = logging.getLogger("batchrek")


class Halt:
    def __init__(self) -> None:
        self.error: RunStopped | None = None
        self.tripped = anyio.Event()

    def __call__(self, error: RunStopped) -> None:
        if self.error is not None:
            return
        self.error = error
        log.error("stopping the run: %s", error)
        self.tripped.set()

    def __repr__(self) -> str:
        return f"Halt({self.error!r})"
