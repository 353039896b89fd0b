"""Shared checks for a run that stopped (a signal, a run-level failure, an outage, the
output, a manifest found not to be one): every stop ends the same way, with the
summary block, one line saying why and what to do, and ``stop`` in the metrics."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

__all__ = ["StopSeen", "stop_seen"]

_PAIRS = re.compile(r"^  pairs: +(\d+) \(ok (\d+), failed (\d+), skipped (\d+)\)$", re.M)
_REQUESTS = re.compile(r"^  requests: +(\d+) \(billed (\d+), ", re.M)


@dataclass(frozen=True)
class StopSeen:
    """What a stopped run printed and wrote about itself."""

    summary_block: bool  # the stopped summary's first and last lines are there
    output_line: bool  # the summary names the output
    ok: int  # the summary's pairs ok, failed, and billed requests
    failed: int
    billed: int
    last_line: str
    metrics: dict[str, Any]

    @property
    def stop(self) -> dict[str, Any]:
        stop: dict[str, Any] = self.metrics["stop"]
        return stop


def stop_seen(stderr: str, *, output: Path, metrics: Path) -> StopSeen:
    pairs = _PAIRS.search(stderr)
    requests = _REQUESTS.search(stderr)
    assert pairs is not None, stderr
    assert requests is not None, stderr
    return StopSeen(
        summary_block=(
            "batchrek summary (stopped before the end of the manifest)" in stderr
            and "rerun with the same -o to finish" in stderr
        ),
        output_line=f"  output:     {output}\n" in stderr,
        ok=int(pairs[2]),
        failed=int(pairs[3]),
        billed=int(requests[2]),
        last_line=stderr.strip().splitlines()[-1],
        metrics=orjson.loads(metrics.read_bytes()),
    )
