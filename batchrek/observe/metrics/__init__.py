"""A run's numbers: ``RunMetrics`` and the bounded ``Timeline`` it samples into.

- ``run.py``: ``RunMetrics``, the recording methods the pipeline calls (each O(1)) and
  the ``snapshot`` / ``summary`` everything else reads.
- ``operation.py``: one operation's counters (``OpStats``), owned by ``RunMetrics``.
- ``source.py``: waiting for the manifest and preparing images (``SourceStats``).
- ``timeline.py``: per-tick samples, merged pairwise when full.
"""

from __future__ import annotations

from batchrek.observe.metrics.findings import Findings
from batchrek.observe.metrics.run import RunMetrics
from batchrek.observe.metrics.timeline import MAX_TIMELINE_POINTS, Timeline, TimelinePoint

__all__ = ["MAX_TIMELINE_POINTS", "Findings", "RunMetrics", "Timeline", "TimelinePoint"]
