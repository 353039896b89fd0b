"""How busy the event loop's thread was: time it ran on a core, and time it was ready
to run but waited for one (the machine's other work, or a container CPU limit).

Both come from Linux's scheduler statistics (``/proc/self/task/<tid>/schedstat``),
read once per tick: measured, not inferred. Running plus waiting near the whole
tick means the loop could not have done more, whoever took the core. Elsewhere
only the thread's own CPU time is known and the wait reads 0.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["CpuUsage", "LoopCpu"]


class LoopCpu:
    """``()`` -> (seconds run, seconds waiting for a core) of the thread that made it
    (make it on the event loop's thread)."""

    def __init__(self) -> None:
        self._path = f"/proc/self/task/{threading.get_native_id()}/schedstat"
        self._proc = self._read() is not None

    def __call__(self) -> tuple[float, float]:
        if self._proc:
            found = self._read()
            if found is not None:
                return found
        return time.thread_time(), 0.0

    def _read(self) -> tuple[float, float] | None:
        try:
            with open(self._path) as fh:
                run_ns, wait_ns, *_ = fh.read().split()
            return int(run_ns) / 1e9, int(wait_ns) / 1e9
        except (OSError, ValueError):
            return None


class CpuUsage:
    """The process's CPU seconds and the loop thread's (run, wait) seconds since it was
    made: the run's start."""

    def __init__(self, cpu: Callable[[], float], loop: Callable[[], tuple[float, float]]) -> None:
        self._cpu = cpu
        self._loop = loop
        self._cpu0 = cpu()
        self._loop0 = loop()

    def process_s(self) -> float:
        return max(0.0, self._cpu() - self._cpu0)

    def loop_s(self) -> tuple[float, float]:
        run, wait = self._loop()
        return max(0.0, run - self._loop0[0]), max(0.0, wait - self._loop0[1])

    def summary(self) -> dict[str, Any]:
        run, wait = self.loop_s()
        return {
            "cpu_s": round(self.process_s(), 3),
            "loop": {"run_s": round(run, 3), "wait_s": round(wait, 3)},
        }
