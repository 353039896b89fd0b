"""The in-flight cap, sized by Little's law (in flight = rate x latency), so the cap
never binds before the rate does, and nothing beyond it holds image bytes in memory
or joins a wave of throttles.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["ConcurrencyController", "ConcurrencySnapshot", "ConcurrencyTarget"]


class ConcurrencyTarget(Protocol):
    """What the concurrency controller drives: a ``batchrek.call.ratelimit.ConcurrencyLimit``."""

    @property
    def limit(self) -> int: ...

    @limit.setter
    def limit(self, value: int) -> None: ...


@dataclass(frozen=True, slots=True)
class ConcurrencySnapshot:
    limit: int
    latency_s: float
    latency_var_s: float
    observations: int


class ConcurrencyController:
    """Sizes the in-flight cap from Little's law: needed = rate x latency.

    Latency is smoothed the way TCP smooths RTT (``srtt`` and ``rttvar``); sizing
    uses ``srtt + 2 x rttvar`` so ordinary latency spread does not starve the rate,
    times ``headroom``. ``rate`` returns the summed rate of every operation sharing
    the cap; with no ``rate`` (or an unlimited one) the cap is ``max_concurrency``.
    """

    def __init__(
        self,
        max_concurrency: int,
        *,
        rate: Callable[[], float | None] | None = None,
        min_concurrency: int = 2,
        headroom: float = 1.25,
        initial_latency_s: float = 1.0,
        target: ConcurrencyTarget | None = None,
    ) -> None:
        if not 1 <= min_concurrency <= max_concurrency:
            raise ValueError("need 1 <= min_concurrency <= max_concurrency")
        self.max_concurrency = max_concurrency
        self.min_concurrency = min_concurrency
        self._rate = rate
        self._headroom = headroom
        self._srtt = initial_latency_s
        self._rttvar = initial_latency_s / 2
        self._observations = 0
        self._target = target
        self._push()

    def observe(self, latency_s: float) -> None:
        """One call's latency (service time, not time spent waiting for a token)."""
        if self._observations == 0:
            self._srtt, self._rttvar = latency_s, latency_s / 2
        else:
            self._rttvar += (abs(self._srtt - latency_s) - self._rttvar) / 4
            self._srtt += (latency_s - self._srtt) / 8
        self._observations += 1
        self._push()

    @property
    def limit(self) -> int:
        rate = self._rate() if self._rate is not None else None
        if rate is None or math.isinf(rate):
            return self.max_concurrency
        needed = math.ceil(rate * (self._srtt + 2 * self._rttvar) * self._headroom) + 1
        return min(self.max_concurrency, max(self.min_concurrency, needed))

    def snapshot(self) -> ConcurrencySnapshot:
        return ConcurrencySnapshot(
            limit=self.limit,
            latency_s=self._srtt,
            latency_var_s=self._rttvar,
            observations=self._observations,
        )

    def _push(self) -> None:
        if self._target is not None:
            limit = self.limit
            if limit != self._target.limit:
                self._target.limit = limit

    def __repr__(self) -> str:
        return (
            f"<ConcurrencyController limit={self.limit}/{self.max_concurrency} "
            f"latency={self._srtt * 1000:.1f}ms±{self._rttvar * 1000:.1f}ms>"
        )
