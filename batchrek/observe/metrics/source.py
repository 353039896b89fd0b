"""What feeding the calls cost: waiting for the manifest source, and preparing images
(reading, downloading, transcoding). Owned and updated by ``RunMetrics``."""

from __future__ import annotations

from typing import Any

from batchrek.observe.histogram import Histogram
from batchrek.observe.metrics.operation import bump

__all__ = ["SourceStats"]


class SourceStats:
    __slots__ = ("by_mode", "prepare", "read_wait", "transcode_s", "transcodes")

    def __init__(self) -> None:
        self.read_wait = Histogram()  # the manifest reader, waiting for the next entry
        self.prepare = Histogram()  # one image's preparation (once per set of limits)
        self.by_mode: dict[str, int] = {}
        self.transcodes = 0
        self.transcode_s = 0.0

    def prepared(self, seconds: float, *, transcoded: bool, mode: str) -> None:
        self.prepare.record(seconds)
        bump(self.by_mode, mode)
        if transcoded:
            self.transcodes += 1
            self.transcode_s += seconds

    def summary(self) -> dict[str, Any]:
        return {
            "prepare_ms": {
                **self.prepare.summary_ms(),
                "seconds": round(self.prepare.sum, 3),
                "by_mode": dict(self.by_mode),
            },
            "transcodes": {"count": self.transcodes, "seconds": round(self.transcode_s, 3)},
            "read_wait_ms": {
                **self.read_wait.summary_ms(),
                "seconds": round(self.read_wait.sum, 3),
            },
        }
