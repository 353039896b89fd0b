"""The only clock and sleep in batchrek, behind a seam tests can drive.

Limiters, controllers and retry back-off take a ``Clock``; production code uses
``SystemClock`` and unit tests use ``FakeClock``, which advances time instantly when
something sleeps, so no unit test ever waits for real.
"""

from __future__ import annotations

import time
from typing import Protocol

import anyio

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A clock whose time moves only when told to, or when a task sleeps.

    ``sleep`` advances the clock by the requested time and yields once, so a single
    task driving a limiter sees exactly the waits it asked for. Tests that run many
    tasks at once should prefer ``advance`` and explicit checkpoints.
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.slept.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now:.6f})"
