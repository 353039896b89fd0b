"""Live progress: a rich display on a terminal, periodic log lines everywhere else.

The reporter only reads :meth:`RunMetrics.snapshot`, once per interval, so it costs
the run nothing between refreshes. Terminal writes happen in a worker thread: a
paused or slow terminal can stall the display but never the event loop. Log lines go
through :mod:`logging`; the CLI's formatter decides text or JSON, and the snapshot
rides along as ``record.progress``.
"""

from __future__ import annotations

import functools
import logging
import math
from typing import Any

import anyio
import anyio.to_thread
from rich.console import Console
from rich.live import Live
from rich.table import Table

from batchrek.observe.metrics.run import RunMetrics

__all__ = ["format_duration", "format_line", "render", "run_progress"]


async def run_progress(
    metrics: RunMetrics,
    *,
    interval_s: float = 10.0,
    live: bool = True,
    logger: logging.Logger | None = None,
    console: Console | None = None,
    refresh_s: float = 1.0,
) -> None:
    """Report until cancelled.

    With ``live`` and a terminal, redraw a rich table every ``refresh_s``; otherwise
    (``--no-progress``, or output piped to a file or a log collector) emit one log
    line every ``interval_s``. Sleeps go through ``metrics.clock``.
    """
    log = logger or logging.getLogger("batchrek.observe.progress")
    console = console or Console(stderr=True)
    if live and console.is_terminal:
        await _run_live(metrics, console, refresh_s)
    else:
        await _run_log(metrics, log, interval_s)


async def _run_log(metrics: RunMetrics, log: logging.Logger, interval_s: float) -> None:
    while True:
        await metrics.clock.sleep(interval_s)
        snap = metrics.snapshot()
        log.info("progress %s", format_line(snap), extra={"progress": snap})


async def _run_live(metrics: RunMetrics, console: Console, refresh_s: float) -> None:
    with Live(render(metrics.snapshot()), console=console, auto_refresh=False) as display:
        try:
            while True:
                await metrics.clock.sleep(refresh_s)
                table = render(metrics.snapshot())  # built here: the thread only prints
                await anyio.to_thread.run_sync(
                    functools.partial(display.update, table, refresh=True)
                )
        finally:
            # Leave the final numbers on screen; cheap, and done before Live stops.
            display.update(render(metrics.snapshot()), refresh=True)


def format_line(snap: dict[str, Any]) -> str:
    """One ``key=value`` line a human can scan and a machine can split."""
    total = snap.get("total")
    done = snap["done"]
    done_part = f"{done}/{total} ({done / total:.1%})" if total else f"{done}"
    rates = " ".join(
        f"rate[{op}]={'unlimited' if r is None else f'{r:g}'}"
        for op, r in snap.get("rate", {}).items()
    )
    parts = [
        f"done={done_part}",
        f"per_s={snap['per_s']:.1f}",
        f"ok={snap['ok']}",
        f"failed={snap['failed']}",
        f"throttled={snap['throttled']}",
        f"retries={snap['retries']}",
        f"in_flight={snap['in_flight']}",
        rates,
        f"eta={format_duration(snap.get('eta_s'))}",
    ]
    return " ".join(p for p in parts if p)


def render(snap: dict[str, Any]) -> Table:
    """The live table: one row of headline numbers, one row per operation's rate."""
    table = Table(title="batchrek", title_justify="left", expand=False)
    for name in ("done", "images/s", "ok", "failed", "throttled", "in flight", "ETA"):
        table.add_column(name, justify="right")
    total = snap.get("total")
    done = snap["done"]
    cap = snap.get("concurrency_limit")
    table.add_row(
        f"{done:,}/{total:,}" if total else f"{done:,}",
        f"{snap['per_s']:.1f}",
        f"[green]{snap['ok']:,}[/]",
        f"[red]{snap['failed']:,}[/]" if snap["failed"] else "0",
        f"[yellow]{snap['throttled']:,}[/]" if snap["throttled"] else "0",
        f"{snap['in_flight']}/{cap}" if cap else str(snap["in_flight"]),
        format_duration(snap.get("eta_s")),
    )
    rates = snap.get("rate", {})
    if rates:
        table.caption = "rate: " + ", ".join(
            f"{op} {'unlimited' if r is None else f'{r:g}/s'}" for op, r in rates.items()
        )
    return table


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = round(seconds)
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
