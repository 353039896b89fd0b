"""The run's one stop switch for failures that make going on pointless, and the
safeguards a run is wired with.

A worker (a run-level answer, an outage past its timeout: ``RunStopped``) or the
output (an S3 part that cannot be uploaded, its records kept in the spool:
``OutputFailed``) trips ``Halt``; the first one wins.
The pipeline then stops as it does on SIGTERM: no new item starts, no new attempt
starts, in-flight calls finish (within the grace period) and are written, and the
run ends with the error's exit code and message.

``Safeguards`` holds the halt and the run's circuit breakers (one per endpoint,
shared by the service calls, the downloads and the part uploads), gives the item
worker its Rekognition breaker, run guard and preflight, and reports what happened
into the metrics at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import anyio

from batchrek.call import Breakers, Operation, RunGuard, preflight
from batchrek.clock import Clock
from batchrek.config import Settings
from batchrek.errors import StopsTheRun
from batchrek.observe import RunMetrics

__all__ = ["Halt", "Safeguards"]

log = logging.getLogger("batchrek")


class Halt:
    def __init__(self) -> None:
        self.error: StopsTheRun | None = None
        self.tripped = anyio.Event()

    def __call__(self, error: StopsTheRun) -> None:
        if self.error is not None:
            return
        self.error = error
        log.error("stopping the run: %s", error)
        self.tripped.set()

    async def wait(self, stop: anyio.Event | None) -> None:
        """Until the halt trips, or ``stop`` (a signal) is set."""
        async with anyio.create_task_group() as first:

            async def until(event: anyio.Event) -> None:
                await event.wait()
                first.cancel_scope.cancel()

            first.start_soon(until, self.tripped)
            if stop is not None:
                first.start_soon(until, stop)

    def __repr__(self) -> str:
        return f"Halt({self.error!r})"


class _Opened(Protocol):
    """What the worker's safeguards need of ``run.services.Services``."""

    rekognition: Any
    rekognition_endpoint: str
    region: str


@dataclass
class Safeguards:
    breakers: Breakers
    halt: Halt = field(default_factory=Halt)

    @classmethod
    def for_run(cls, settings: Settings, clock: Clock) -> Safeguards:
        return cls(Breakers(settings.breaker_settings(), clock=clock))

    def for_worker(
        self, settings: Settings, services: _Opened, ops: tuple[Operation, ...], clock: Clock
    ) -> dict[str, Any]:
        """The ``ItemWorker`` arguments: breaker, guard, halt, preflight."""
        endpoint, region = services.rekognition_endpoint, services.region
        checks: Callable[[], Awaitable[None]] = partial(
            preflight,
            services.rekognition,
            ops,
            region=region,
            connect_timeout_s=settings.preflight_timeout_s,
            outage_timeout_s=settings.outage_timeout_s,
            clock=clock,
        )
        return {
            "breaker": self.breakers.get(
                f"rekognition {endpoint}", name=f"the Rekognition endpoint {endpoint}"
            ),
            "guard": RunGuard(region=region, endpoint=endpoint),
            "halt": self.halt,
            "preflight": checks,
        }

    def report(self, metrics: RunMetrics) -> None:
        """The outages the breakers waited out, into the summary (why the run stopped
        goes there through the outcome)."""
        for breaker in self.breakers.tripped():
            metrics.findings.outage(breaker.name, trips=breaker.trips, probes=breaker.probes)
