"""Observe: what every stage is doing, watched from beside the data path, never in it.

- ``metrics``: ``RunMetrics``, where the pipeline records counts and durations (each
  call O(1), no per-item state); its ``snapshot`` and ``summary`` feed the rest.
- ``histogram``: bounded-memory latency histograms with quantiles.
- ``verdict``: what limited the run (quota, concurrency, client CPU, ...).
- ``progress``: the live display on a terminal, periodic log lines elsewhere.
- ``logs``: text or JSON log lines.
- ``report``: the run picture (HTML or PNG) from ``--metrics-out`` files: one run, or
  several compared on shared axes.
- ``numbers``: one precision rule for every number shown to a person.
- ``prometheus``: Pushgateway push and node-exporter textfile.
- ``segments``: the output as a whole across reruns (each run a segment).

``report`` and ``prometheus`` are loaded on first use of their names here
(``write_report``, ``report_format``, ``labels_for``, ``push``, ``write_textfile``),
not when this package is imported:
a run that exports nothing never imports ``prometheus_client`` or the report's
drawing code. Other packages import from here, never from the modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from batchrek.observe.histogram import Histogram
from batchrek.observe.logs import JsonFormatter, ScrubFilter, log_summary, setup_logging
from batchrek.observe.metrics import Findings, RunMetrics, Timeline, TimelinePoint
from batchrek.observe.numbers import fmt, fmt_count, fmt_fixed
from batchrek.observe.progress import format_duration, format_line, run_progress
from batchrek.observe.segments import history_lines, with_history
from batchrek.observe.verdict import Verdict, tuning_verdict, verdict_lines

if TYPE_CHECKING:
    from batchrek.observe.prometheus import push, write_textfile
    from batchrek.observe.report import labels_for, report_format, write_report

__all__ = [
    "Findings",
    "Histogram",
    "JsonFormatter",
    "RunMetrics",
    "ScrubFilter",
    "Timeline",
    "TimelinePoint",
    "Verdict",
    "fmt",
    "fmt_count",
    "fmt_fixed",
    "format_duration",
    "format_line",
    "history_lines",
    "labels_for",
    "log_summary",
    "push",
    "report_format",
    "run_progress",
    "setup_logging",
    "tuning_verdict",
    "verdict_lines",
    "with_history",
    "write_report",
    "write_textfile",
]

# Name -> the module that defines it, imported on first access (PEP 562).
_LAZY = {
    "push": "batchrek.observe.prometheus",
    "write_textfile": "batchrek.observe.prometheus",
    "write_report": "batchrek.observe.report",
    "report_format": "batchrek.observe.report",
    "labels_for": "batchrek.observe.report",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value
