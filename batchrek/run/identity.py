"""What names a run in its metrics: the ``run`` section of ``--metrics-out``, the top
of the report, and a column of ``batchrek report a.json b.json`` comparisons.

Everything a user changes between two runs while tuning is here (concurrency, rate,
operations, shard), and everything that says which run it was (version, manifest,
output, region, endpoint). The start time and duration are added by the metrics.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from batchrek.config import Settings

__all__ = ["run_identity"]


def _version() -> str:
    try:
        return version("batchrek")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def run_identity(settings: Settings, *, region: str, output: str) -> dict[str, Any]:
    """``output`` is this shard's own output (``out.shard-0001-of-0004.jsonl``)."""
    return {
        "version": _version(),
        "manifest": settings.manifest,
        "output": output,
        "operations": list(settings.operations),
        "region": region,
        "endpoint_url": settings.endpoint_url,
        "concurrency": settings.concurrency,
        "rate": settings.rate,
        "rates": dict(settings.rates),
        "shard_index": settings.shard_index or 0,
        "shard_count": settings.shard_count or 1,
        "shard_rate_split": settings.shard_rate_split,
        "limit": settings.limit,
        "resume": settings.resume,
    }
