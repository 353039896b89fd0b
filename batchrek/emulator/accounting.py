"""Who asked for what, and how often each image was analysed (billed).

A test proves "nothing was sent twice" by reading ``analyses``: per operation, how
many successful, billable analyses each distinct image had. Images are keyed by the
sha256 of their bytes, or by ``s3://bucket/key[?versionId=v]``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

__all__ = ["Stats"]


class Stats:
    """Counters only; the server updates them from its single event-loop thread."""

    def __init__(self) -> None:
        self._requests: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._analyses: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._inputs: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.in_flight = 0
        self.max_in_flight = 0

    def started(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def finished(self, operation: str, outcome: str) -> None:
        """``outcome`` is "ok", an error code, or "dropped"."""
        self.in_flight -= 1
        self._requests[operation][outcome] += 1

    def analysed(self, operation: str, key: str, mode: str) -> None:
        """One billable analysis of the image ``key`` sent as ``mode`` (bytes/s3object)."""
        self._analyses[operation][key] += 1
        self._inputs[operation][mode] += 1

    def snapshot(self) -> dict[str, Any]:
        requests = {op: dict(c) for op, c in sorted(self._requests.items())}
        return {
            "requests": requests,
            "total_requests": sum(sum(c.values()) for c in self._requests.values()),
            "analyses": {op: dict(c) for op, c in sorted(self._analyses.items())},
            "inputs": {op: dict(c) for op, c in sorted(self._inputs.items())},
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }

    def clear(self) -> None:
        self._requests.clear()
        self._analyses.clear()
        self._inputs.clear()
        self.max_in_flight = self.in_flight

    def __repr__(self) -> str:
        total = sum(sum(c.values()) for c in self._requests.values())
        return f"Stats(requests={total}, in_flight={self.in_flight})"
