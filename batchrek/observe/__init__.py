"""Observe: what every stage is doing, watched from beside the data path, never in it.

- ``metrics``: ``RunMetrics``, where the pipeline records counts and durations (each
  call O(1), no per-item state); its ``snapshot`` and ``summary`` feed the rest.
- ``histogram``: bounded-memory latency histograms with quantiles.
- ``verdict``: what limited the run (quota, concurrency, client CPU, ...).
- ``progress``: the live display on a terminal, periodic log lines elsewhere.
- ``logs``: text or JSON log lines.
- ``report``: the run picture (HTML or PNG) from a ``--metrics-out`` summary.
- ``prometheus``: Pushgateway push and node-exporter textfile.

``report`` and ``prometheus`` are loaded on first use of their names here
(``write_report``, ``push``, ``write_textfile``), not when this package is imported:
a run that exports nothing never imports ``prometheus_client`` or the report's
drawing code. Other packages import from here, never from the modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from batchrek.observe.histogram import Histogram
from batchrek.observe.logs import JsonFormatter, ScrubFilter, setup_logging
from batchrek.observe.metrics import RunMetrics, Timeline, TimelinePoint
from batchrek.observe.progress import format_duration, format_line, run_progress
from batchrek.observe.verdict import Verdict, VerdictInputs, tuning_verdict

if TYPE_CHECKING:
    from batchrek.observe.prometheus import push, write_textfile
    from batchrek.observe.report import write_report

__all__ = [
    "Histogram",
    "JsonFormatter",
    "RunMetrics",
    "ScrubFilter",
    "Timeline",
    "TimelinePoint",
    "Verdict",
    "VerdictInputs",
    "format_duration",
    "format_line",
    "push",
    "run_progress",
    "setup_logging",
    "tuning_verdict",
    "write_report",
    "write_textfile",
]

# Name -> the module that defines it, imported on first access (PEP 562).
_LAZY = {
    "push": "batchrek.observe.prometheus",
    "write_textfile": "batchrek.observe.prometheus",
    "write_report": "batchrek.observe.report",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value
