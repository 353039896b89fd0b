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
from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.text import Text

from batchrek.observe.metrics.run import RunMetrics
from batchrek.observe.numbers import fmt_count, fmt_fixed

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
    """One ``key=value`` line a human can scan and a machine can split; images and
    (image, operation) pairs counted apart, rates at three significant digits."""
    rates = " ".join(
        f"rate[{op}]={'unlimited' if r is None else fmt_fixed(r)}"
        for op, r in snap.get("rate", {}).items()
    )
    cap = snap.get("concurrency_limit")
    parts = [
        f"images={_of(snap.get('images_done', 0), snap.get('images_total'))}",
        f"pairs={_of(snap['done'], snap.get('total'))}",
        f"images/s={fmt_fixed(snap.get('images_per_s', 0.0))}",
        f"pairs/s={fmt_fixed(snap['per_s'])}",
        f"ok={snap['ok']}",
        f"failed={snap['failed']}",
        f"throttled={snap['throttled']}",
        f"retries={snap['retries']}",
        f"in_flight={snap['in_flight']}" + (f"/{cap}" if cap else ""),
        rates,
        f"eta={format_duration(snap.get('eta_s'))}",
    ]
    return " ".join(p for p in parts if p)


def _of(done: int, total: int | None) -> str:
    if not total:
        return f"{done}"
    return f"{done}/{total} ({min(done / total, 1.0):.1%})"


class _Display:
    """The live display: a few lines of fields, wrapped between fields to the
    terminal's width, most important first (the total and the ETA lead), so a narrow
    terminal loses nothing a user steers by."""

    def __init__(self, snap: dict[str, Any]) -> None:
        self.snap = snap

    def lines(self) -> list[list[str]]:
        snap = self.snap
        images, total = snap.get("images_done", 0), snap.get("images_total")
        pairs, pairs_total = snap["done"], snap.get("total")
        share = f" ({min(images / total, 1.0):.1%})" if total else ""
        cap = snap.get("concurrency_limit")
        failed, throttled = snap["failed"], snap["throttled"]
        rates = snap.get("rate", {})
        return [
            [
                "[b]batchrek[/]",
                f"images {fmt_count(images)}" + (f"/{fmt_count(total)}" if total else "") + share,
                f"ETA {format_duration(snap.get('eta_s'))}",
            ],
            [
                f"{fmt_fixed(snap.get('images_per_s', 0.0))} images/s",
                f"pairs {fmt_count(pairs)}" + (f"/{fmt_count(pairs_total)}" if pairs_total else ""),
                f"{fmt_fixed(snap['per_s'])} pairs/s",
            ],
            [
                f"ok [green]{fmt_count(snap['ok'])}[/]",
                f"failed [red]{fmt_count(failed)}[/]" if failed else "failed 0",
                f"throttled [yellow]{fmt_count(throttled)}[/]" if throttled else "throttled 0",
                f"in flight {snap['in_flight']}" + (f"/{cap}" if cap else ""),
            ],
            [
                f"rate {op} " + ("unlimited" if r is None else f"{fmt_fixed(r)}/s")
                for op, r in rates.items()
            ],
        ]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(20, options.max_width)
        for fields in self.lines():
            line = Text()
            for field in fields:
                piece = Text.from_markup(field)
                if line.cell_len and line.cell_len + 2 + piece.cell_len > width:
                    line.truncate(width, overflow="ellipsis")
                    yield line
                    line = Text()
                elif line.cell_len:
                    line.append("  ")
                line.append_text(piece)
            if line.cell_len:
                line.truncate(width, overflow="ellipsis")
                yield line


def render(snap: dict[str, Any]) -> _Display:
    """The live display for one snapshot (a rich renderable)."""
    return _Display(snap)


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
