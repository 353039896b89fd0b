"""What the service answered lately, for the rate controller's windowed questions.

``AdaptiveRate`` asks three things of the last few seconds: how many calls were
accepted and throttled since a moment, what rate the service accepted (not counting
a pause, when nothing was sent), and whether answers keep up with the rate sent.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque

__all__ = ["Answers"]


class Answers:
    """Accepted and throttled calls by (monotonic) time, and the current pause."""

    def __init__(self) -> None:
        self._ok: deque[float] = deque()
        self._bad: deque[float] = deque()
        self.pause = (-math.inf, -math.inf)  # (start, end) of the last pause

    def accepted(self, now: float) -> None:
        self._ok.append(now)

    def throttled(self, now: float) -> None:
        self._bad.append(now)

    def forget_before(self, t: float) -> None:
        for times in (self._ok, self._bad):
            while times and times[0] < t:
                times.popleft()

    def since(self, t: float) -> tuple[int, int]:
        """(accepted, throttled) answers from ``t`` on."""
        return _count_since(self._ok, t), _count_since(self._bad, t)

    def paused(self, start: float, end: float) -> float:
        """Seconds of [start, end] inside the last pause."""
        return max(0.0, min(end, self.pause[1]) - max(start, self.pause[0]))

    def _unpaused(self, since: float, now: float) -> float:
        return now - since - self.paused(since, now)

    def per_second(self, since: float, now: float) -> float:
        """Answers (accepted or throttled) per second from ``since`` to ``now``, not
        counting a pause."""
        return sum(self.since(since)) / max(self._unpaused(since, now), 1e-9)

    def accepted_rate(self, since: float, now: float) -> float | None:
        """Accepted calls per second from ``since`` to ``now``, not counting a pause;
        None when fewer than 5 were (too few to measure)."""
        span = self._unpaused(since, now)
        count = _count_since(self._ok, since)
        if count < 5 or span <= 0:
            return None
        return count / span


def _count_since(times: deque[float], since: float) -> int:
    return len(times) - bisect_left(times, since)
