"""What held the run back, and which knob to turn: a verdict from the run's evidence.

The verdict reads the ``--metrics-out`` document itself (``tuning_verdict(summary)``),
so it can be recomputed from any recorded run, and every number it prints is kept in
``verdict.evidence`` with the digits shown: a user can find each one in the JSON.
The checks run in this order; the first whose evidence holds names the limiter:

    too_short    under MIN_ELAPSED_S or MIN_REQUESTS: nothing has settled yet
    quota        the service throttled (the only direct evidence of a quota)
    rate         no throttle, but workers waited for rate tokens: --rate auto still
                 ramping towards a quota it has not met (said so: not the quota, and
                 how long it needs to reach what --concurrency carries), or a fixed
                 --rate holding the run
    concurrency  in flight sat at --concurrency (Little's law, measured latency)
    image_preparation   workers busy reading or transcoding images
    manifest_source     the manifest reader waited for the source, workers idle
    client_cpu   measured: the event loop thread ran or waited for a core nearly all
                 the run (Linux scheduler statistics), or the process used ~1 core
    none         nothing saturated: the items ran out

Concurrency, preparation and source are judged only when the client had CPU to
spare: a saturated process inflates each of their measurements (call latency, the
time to read a file, the wait for the next manifest line), so with the CPU
saturated they fall through to client_cpu. Worker counts are what exists
(``concurrency.workers``, ``concurrency.max``), never the in-flight cap of the
moment, and are clamped to it. A suggestion is a real ``batchrek run`` flag with its
value (``args``) or a config setting (``setting``); where no setting helps, the
suggestion says so instead.

- ``facts``: the Verdict value, its Evidence, and the Facts read from a document.
- ``checks``: the checks above and ``tuning_verdict``.
"""

from __future__ import annotations

from batchrek.observe.verdict.checks import MIN_ELAPSED_S, MIN_REQUESTS, tuning_verdict
from batchrek.observe.verdict.facts import Limiter, Verdict, verdict_lines

__all__ = [
    "MIN_ELAPSED_S",
    "MIN_REQUESTS",
    "Limiter",
    "Verdict",
    "tuning_verdict",
    "verdict_lines",
]
