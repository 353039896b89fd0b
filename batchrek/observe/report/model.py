"""The report's model: charts (lines of (t, value) points, limits drawn dashed), their
scales, and the run's identity and headline rows, shared by the HTML and PNG
renderers and by the comparison of several runs.

One run's charts answer the tuning questions in order: did requests reach the rate
limit (requests/s against the rate line), did the service throttle, did in-flight
reach the concurrency cap (against the live cap and --concurrency), what latency
did Little's law work with, did workers wait for rate tokens, and was the client's
CPU saturated.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batchrek.observe.numbers import fmt, fmt_count, fmt_percent

__all__ = [
    "PALETTE",
    "Chart",
    "Line",
    "Scale",
    "charts",
    "compare_charts",
    "drawing_order",
    "fmt_tick",
    "fmt_time",
    "headline_rows",
    "identity_rows",
    "in_legend",
    "run_label",
    "scale",
    "segments",
]

PALETTE = ("#1f6fd1", "#c0392b", "#2a9d38", "#e07b00", "#7b3fb0", "#13918f", "#8a6d3b")
_GREEN, _BLUE, _RED, _ORANGE, _GREY = "#2a9d38", "#1f6fd1", "#c0392b", "#e07b00", "#555555"

Points = tuple[tuple[float, float | None], ...]


@dataclass(frozen=True, slots=True)
class Line:
    label: str
    color: str
    points: Points  # None: no data in that interval
    dashed: bool = False  # a limit (rate limit, concurrency cap), not a measurement
    legend: bool = True  # named in the chart's legend (a comparison's limits are not)


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    unit: str
    lines: tuple[Line, ...]


Row = Mapping[str, Any]


def _rows(summary: Mapping[str, Any]) -> Sequence[Row]:
    return summary.get("timeline") or []


def _series(rows: Sequence[Row], value: Callable[[Row], Any]) -> Points:
    return tuple((float(r.get("t", 0.0)), _num(value(r))) for r in rows)


def _flat(rows: Sequence[Row], y: float | None) -> Points:
    """A horizontal limit across the run (two points are enough)."""
    if y is None or not rows:
        return ()
    return ((0.0, y), (float(rows[-1].get("t", 0.0)), y))


def _rate_sum(r: Row) -> float | None:
    rates = [v for v in (r.get("rate") or {}).values()]
    if not rates or any(v is None for v in rates):
        return None  # unlimited: no line
    return float(sum(rates))


def charts(summary: Mapping[str, Any]) -> list[Chart]:
    """One run's charts, each measurement against the limit that bounds it."""
    rows = _rows(summary)
    conc = summary.get("concurrency") if isinstance(summary.get("concurrency"), Mapping) else {}
    workers = (conc or {}).get("workers")
    top = (conc or {}).get("max")
    result = [
        Chart(
            "Requests and completions per second",
            "per s",
            (
                Line("requests/s", _BLUE, _series(rows, lambda r: r.get("requests_per_s"))),
                Line("ok pairs/s", _GREEN, _series(rows, lambda r: r.get("ok_per_s"))),
                Line("rate limit", _ORANGE, _series(rows, _rate_sum), dashed=True),
            ),
        ),
        Chart(
            "Throttled per second",
            "throttles/s",
            (Line("throttled/s", _ORANGE, _series(rows, lambda r: r.get("throttled_per_s"))),),
        ),
        Chart(
            "In flight",
            "calls",
            (
                Line("in flight", _BLUE, _series(rows, lambda r: r.get("in_flight"))),
                Line("live cap", _GREY, _series(rows, lambda r: r.get("concurrency_limit"))),
                Line(f"--concurrency {top}", _RED, _flat(rows, top), dashed=True),
            ),
        ),
        Chart(
            "Service latency",
            "ms",
            (
                Line("p50", _BLUE, _series(rows, lambda r: r.get("p50_ms"))),
                Line("p99", _RED, _series(rows, lambda r: r.get("p99_ms"))),
            ),
        ),
        Chart(
            "Waiting for a rate token",
            "workers",
            (
                Line("waiting", _ORANGE, _series(rows, lambda r: r.get("token_wait_workers"))),
                Line(f"{workers} workers", _RED, _flat(rows, workers), dashed=True),
            ),
        ),
        Chart(
            "Client CPU",
            "cores",
            (
                Line("process CPU", _BLUE, _series(rows, lambda r: r.get("cpu_cores"))),
                Line("1 core", _RED, _flat(rows, 1.0), dashed=True),
            ),
        ),
    ]
    ops = sorted({op for r in rows for op, v in (r.get("rate") or {}).items() if v is not None})
    if len(ops) > 1:
        result.append(
            Chart(
                "Rate limit by operation",
                "req/s",
                tuple(
                    Line(op, PALETTE[i % len(PALETTE)], _series(rows, _op_rate(op)), dashed=True)
                    for i, op in enumerate(ops)
                ),
            )
        )
    return [_without_empty(c) for c in result]


def compare_charts(summaries: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> list[Chart]:
    """Several runs on shared axes: one colour per run, its limit dashed in that colour."""

    def per_run(
        title: str,
        unit: str,
        value: Callable[[Row], Any],
        *,
        limit: Callable[[Row], Any] | None = None,
        cap: Callable[[Mapping[str, Any]], Any] | None = None,
    ) -> Chart:
        lines: list[Line] = []
        for i, (s, label) in enumerate(zip(summaries, labels, strict=True)):
            color = PALETTE[i % len(PALETTE)]
            rows = _rows(s)
            lines.append(Line(label, color, _series(rows, value)))
            if limit is not None:
                lines.append(
                    Line(f"{label} limit", color, _series(rows, limit), dashed=True, legend=False)
                )
            if cap is not None:
                points = _flat(rows, _num(cap(s)))
                lines.append(Line(f"{label} cap", color, points, dashed=True, legend=False))
        return _without_empty(Chart(title, unit, tuple(lines)))

    def top(s: Mapping[str, Any]) -> Any:
        conc = s.get("concurrency")
        return conc.get("max") if isinstance(conc, Mapping) else None

    return [
        per_run("Requests per second (dashed: rate limit)", "req/s",
                lambda r: r.get("requests_per_s"), limit=_rate_sum),
        per_run("Completed pairs per second", "ok/s", lambda r: r.get("ok_per_s")),
        per_run("Throttled per second", "throttles/s", lambda r: r.get("throttled_per_s")),
        per_run("In flight (dashed: --concurrency)", "calls", lambda r: r.get("in_flight"),
                cap=top),
        per_run("Service latency p50", "ms", lambda r: r.get("p50_ms")),
        per_run("Waiting for a rate token", "workers", lambda r: r.get("token_wait_workers")),
        per_run("Client CPU", "cores", lambda r: r.get("cpu_cores")),
    ]  # fmt: skip


def _op_rate(op: str) -> Callable[[Row], Any]:
    return lambda r: (r.get("rate") or {}).get(op)


def _without_empty(chart: Chart) -> Chart:
    """Drop limit lines with no data (an unlimited rate, an older metrics file)."""
    kept = tuple(
        line
        for line in chart.lines
        if not line.dashed or any(y is not None for _, y in line.points)
    )
    return Chart(chart.title, chart.unit, kept)


def in_legend(chart: Chart) -> list[Line]:
    return [line for line in chart.lines if line.legend]


def drawing_order(chart: Chart) -> list[Line]:
    """Limits first, measurements over them: a line that sits on its cap stays seen."""
    return sorted(chart.lines, key=lambda line: not line.dashed)


# -- scales ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scale:
    xmax: float
    ymax: float
    xticks: tuple[float, ...]
    yticks: tuple[float, ...]


def scale(chart: Chart, *, xmax: float | None = None) -> Scale:
    """Axes that fit every line; ``xmax`` shares the time axis between charts."""
    xs = [x for line in chart.lines for x, _ in line.points]
    ys = [y for line in chart.lines for _, y in line.points if y is not None]
    right = max([*xs, 1.0]) if xmax is None else max(xmax, 1.0)
    top = max([*ys, 0.0]) or 1.0
    ystep = _nice_step(top)
    ymax = ystep * math.ceil(top * 1.05 / ystep)
    xstep = _time_step(right)
    return Scale(
        xmax=right,
        ymax=ymax,
        xticks=tuple(i * xstep for i in range(int(right / xstep) + 1)),
        yticks=tuple(i * ystep for i in range(round(ymax / ystep) + 1)),
    )


def _nice_step(span: float, target: int = 4) -> float:
    raw = span / target
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * magnitude >= raw:
            return m * magnitude
    return 10 * magnitude


_TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)


def _time_step(span: float) -> float:
    """A tick step people read as time: 30 s, 5 min, 1 h, ..."""
    raw = span / 5
    for step in _TIME_STEPS:
        if step >= raw:
            return float(step)
    return 86400.0 * math.ceil(raw / 86400)


def segments(points: Points) -> list[list[tuple[float, float]]]:
    """Runs of points with data; a gap (None) breaks the line."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x, y))
    return [r for r in runs if r]


# -- what the run was, and how it went ------------------------------------------------------


def run_label(summary: Mapping[str, Any], path: str) -> str:
    """A short name for a run in a comparison: its file name."""
    return os.path.splitext(os.path.basename(path))[0] or path


def identity_rows(s: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Which run this was and how it was set up (older files: what is known)."""
    run: Mapping[str, Any] = s.get("run") or {}

    def get(key: str) -> str:
        value = run.get(key)
        return "?" if value is None or value == "" else str(value)

    rates = run.get("rates") or {}
    rate = get("rate") + ("".join(f", {op} {v}" for op, v in rates.items()) if rates else "")
    shard = f"{int(run.get('shard_index') or 0)} of {int(run.get('shard_count') or 1)}"
    return [
        ("version", get("version")),
        ("started", get("started")),
        ("duration", fmt_time(float(s.get("elapsed_s") or 0.0), exact=True)),
        ("manifest", get("manifest")),
        ("output", get("output")),
        ("operations", ", ".join(run.get("operations") or []) or "?"),
        ("region", get("region")),
        ("endpoint", str(run.get("endpoint_url") or "AWS")),
        ("concurrency", get("concurrency")),
        ("rate", rate),
        ("shard", shard),
    ]


def headline_rows(s: Mapping[str, Any]) -> list[tuple[str, str]]:
    """How the run went, at a sensible precision."""
    lat = s.get("latency_ms") or {}
    requests = int(s.get("requests") or 0)
    throttled = int(s.get("throttled") or 0)
    elapsed = float(s.get("elapsed_s") or 0.0)
    inp = s.get("input") or {}
    tc = s.get("transcodes") or {}
    conc = s.get("concurrency") if isinstance(s.get("concurrency"), Mapping) else {}
    return [
        ("pairs ok / failed / skipped", " / ".join(
            fmt_count(s.get(k) or 0) for k in ("ok", "failed", "skipped"))),
        ("images", fmt_count(s.get("images_done", s.get("items")) or 0)),
        ("pairs per second", fmt(s.get("throughput_per_s") or 0.0)),
        ("requests (per second)",
         f"{fmt_count(requests)} ({fmt(requests / elapsed if elapsed else 0.0)})"),
        ("throttled", f"{fmt_count(throttled)} "
         f"({fmt_percent(throttled / requests if requests else 0.0)})"),
        ("retries", fmt_count(s.get("retries") or 0)),
        ("latency p50 / p90 / p99 / max",
         " / ".join(fmt(lat.get(k) or 0.0) for k in ("p50", "p90", "p99", "max")) + " ms"),
        ("in flight (mean of max)",
         f"{fmt((conc or {}).get('in_flight_mean'))} of {(conc or {}).get('max', '?')}"),
        ("input bytes / s3object",
         f"{fmt_count(inp.get('bytes') or 0)} / {fmt_count(inp.get('s3object') or 0)}"),
        ("transcodes", f"{fmt_count(tc.get('count') or 0)} ({fmt(tc.get('seconds') or 0.0)} s)"),
        ("client CPU", f"{fmt(s.get('cpu_s') or 0.0)} s"),
    ]  # fmt: skip


def fmt_time(seconds: float, *, exact: bool = False) -> str:
    """``42s``, ``2m05s``, ``1h01m``; ``exact`` keeps a tenth under a minute."""
    if exact and seconds < 60:
        return f"{fmt(seconds)} s"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s % 60 else f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def fmt_tick(v: float) -> str:
    """An axis label: ``0``, ``2.5``, ``1.5k``."""
    if v >= 1000:
        return f"{fmt(v / 1000)}k"
    return fmt(v)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None
