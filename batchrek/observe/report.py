"""The run picture: a self-contained HTML page (inline SVG) or a PNG, from --metrics-out.

One model feeds both renderers: the timeline becomes a few ``Chart`` values (lines of
(t, value) points), then :func:`_svg` or :func:`_draw_png` paints them. No JavaScript,
no plotting library: the HTML opens from a mail attachment or an S3 console, and the
PNG needs only Pillow, which batchrek already depends on.
"""

from __future__ import annotations

import html
import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from batchrek.safefile import atomic_write

__all__ = [
    "PNG_CHART_HEIGHT",
    "PNG_HEADER_HEIGHT",
    "PNG_WIDTH",
    "Chart",
    "Line",
    "charts",
    "png_size",
    "render_html",
    "write_report",
]

PNG_WIDTH = 1200
PNG_HEADER_HEIGHT = 190
PNG_CHART_HEIGHT = 330
_SVG_W, _SVG_H = 560, 240
_MARGIN = (60, 18, 30, 38)  # left, right, top, bottom
_PALETTE = ("#1f6fd1", "#c0392b", "#2a9d38", "#e07b00", "#7b3fb0", "#13918f")


@dataclass(frozen=True, slots=True)
class Line:
    label: str
    color: str
    points: tuple[tuple[float, float | None], ...]  # None: no data in that interval


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    unit: str
    lines: tuple[Line, ...]


def charts(summary: Mapping[str, Any]) -> list[Chart]:
    """The timeline as charts: throughput, throttles, in-flight, latency, rate limits."""
    rows: Sequence[Mapping[str, Any]] = summary.get("timeline") or []
    t = [float(r.get("t", 0.0)) for r in rows]

    def series(key: str) -> tuple[tuple[float, float | None], ...]:
        return tuple((ti, _num(r.get(key))) for ti, r in zip(t, rows, strict=True))

    result = [
        Chart("Completed per second", "ok/s", (Line("ok/s", "#2a9d38", series("ok_per_s")),)),
        Chart(
            "Throttled per second",
            "throttles/s",
            (Line("throttled/s", "#e07b00", series("throttled_per_s")),),
        ),
        Chart("In flight", "calls", (Line("in flight", "#1f6fd1", series("in_flight")),)),
        Chart(
            "Service latency",
            "ms",
            (
                Line("p50", "#1f6fd1", series("p50_ms")),
                Line("p99", "#c0392b", series("p99_ms")),
            ),
        ),
    ]
    ops = sorted({op for r in rows for op, v in (r.get("rate") or {}).items() if v is not None})
    if ops:
        result.append(
            Chart(
                "Rate limit",
                "req/s",
                tuple(
                    Line(
                        op,
                        _PALETTE[i % len(_PALETTE)],
                        tuple(
                            (ti, _num((r.get("rate") or {}).get(op)))
                            for ti, r in zip(t, rows, strict=True)
                        ),
                    )
                    for i, op in enumerate(ops)
                ),
            )
        )
    return result


def write_report(metrics_json: Mapping[str, Any], out_path: str) -> None:
    """Write ``out_path``: a PNG when it ends with .png, otherwise HTML. Replaced
    atomically through a new temporary file (``batchrek.safefile``)."""
    if out_path.lower().endswith(".png"):
        buf = io.BytesIO()
        _draw_png(metrics_json).save(buf, format="PNG")
        data = buf.getvalue()
    else:
        data = render_html(metrics_json).encode("utf-8")
    atomic_write(out_path, data)


# -- scales -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Scale:
    xmax: float
    ymax: float
    xticks: tuple[float, ...]
    yticks: tuple[float, ...]


def _scale(chart: Chart) -> _Scale:
    xs = [x for line in chart.lines for x, _ in line.points]
    ys = [y for line in chart.lines for _, y in line.points if y is not None]
    xmax = max([*xs, 1.0])
    ystep = _nice_step(max([*ys, 0.0]) or 1.0)
    ymax = ystep * math.ceil((max([*ys, 0.0]) or 1.0) / ystep)
    xstep = _time_step(xmax)
    return _Scale(
        xmax=xmax,
        ymax=ymax,
        xticks=tuple(i * xstep for i in range(int(xmax / xstep) + 1)),
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


def _segments(points: Sequence[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """Runs of points with data; a gap (None) breaks the line."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x, y))
    return [r for r in runs if r]


# -- HTML -------------------------------------------------------------------------------


def render_html(summary: Mapping[str, Any]) -> str:
    figures = "\n".join(_svg(c) for c in charts(summary))
    verdict = summary.get("verdict") or {}
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>batchrek run report</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin: 8px 0 20px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 10px; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child, th:first-child {{ text-align: left; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 12px; }}
.verdict {{ border-left: 4px solid #1f6fd1; background: #f4f8fd; padding: 8px 14px; }}
svg text {{ font: 11px sans-serif; fill: #444; }} svg .title {{ font-size: 13px; fill: #111; }}
</style></head><body>
<h1>batchrek run report</h1>
<div class="verdict"><b>Limiter: {_e(verdict.get("limiter", "?"))}</b>
<p>{_e(verdict.get("explanation", ""))}</p>
<p>Suggestion: <code>{_e(verdict.get("flag", "") or "none")}</code></p></div>
<h2>Summary</h2>
{_summary_table(summary)}
{_operations_table(summary)}
{_codes_table(summary)}
<h2>Over time</h2>
<div class="charts">
{figures}
</div>
</body></html>
"""


def _summary_table(s: Mapping[str, Any]) -> str:
    lat = s.get("latency_ms") or {}
    inp = s.get("input") or {}
    tc = s.get("transcodes") or {}
    rows = [
        ("items", s.get("items")),
        ("requests", s.get("requests")),
        ("ok", s.get("ok")),
        ("failed", s.get("failed")),
        ("skipped", s.get("skipped")),
        ("deduplicated", s.get("deduplicated")),
        ("retries", s.get("retries")),
        ("throttled", s.get("throttled")),
        ("elapsed", _fmt_t(float(s.get("elapsed_s") or 0.0))),
        ("throughput", f"{s.get('throughput_per_s', 0)} /s"),
        (
            "latency p50 / p90 / p99 / max",
            " / ".join(f"{lat.get(k, 0)}" for k in ("p50", "p90", "p99", "max")) + " ms",
        ),
        ("input bytes / s3object", f"{inp.get('bytes', 0)} / {inp.get('s3object', 0)}"),
        ("transcodes", f"{tc.get('count', 0)} ({tc.get('seconds', 0)} s)"),
    ]
    body = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table><tr><th>measure</th><th>value</th></tr>{body}</table>"


def _operations_table(s: Mapping[str, Any]) -> str:
    ops: Mapping[str, Mapping[str, Any]] = s.get("by_operation") or {}
    if not ops:
        return ""
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "operation",
            "requests",
            "ok",
            "failed",
            "throttled",
            "retries",
            "p50 ms",
            "p99 ms",
            "rate",
        )
    )
    body = ""
    for op, o in ops.items():
        lat = o.get("latency_ms") or {}
        cells = (
            op,
            o.get("requests"),
            o.get("ok"),
            o.get("failed"),
            o.get("throttled"),
            o.get("retries"),
            lat.get("p50"),
            lat.get("p99"),
            "unlimited" if o.get("rate") is None else o.get("rate"),
        )
        body += "<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>"
    return f"<h3>By operation</h3><table><tr>{head}</tr>{body}</table>"


def _codes_table(s: Mapping[str, Any]) -> str:
    codes: Mapping[str, int] = s.get("failed_by_code") or {}
    if not codes:
        return ""
    body = "".join(
        f"<tr><td>{_e(c)}</td><td>{n}</td></tr>"
        for c, n in sorted(codes.items(), key=lambda kv: -kv[1])
    )
    return f"<h3>Failures by code</h3><table><tr><th>code</th><th>pairs</th></tr>{body}</table>"


def _svg(chart: Chart) -> str:
    left, right, top, bottom = _MARGIN
    w, h = _SVG_W - left - right, _SVG_H - top - bottom
    sc = _scale(chart)

    def px(x: float) -> float:
        return left + x / sc.xmax * w

    def py(y: float) -> float:
        return top + h - min(y, sc.ymax) / sc.ymax * h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_SVG_W}" height="{_SVG_H}" '
        f'viewBox="0 0 {_SVG_W} {_SVG_H}" role="img" aria-label="{_e(chart.title)}">',
        f"<title>{_e(chart.title)}</title>",
        f'<text class="title" x="{left}" y="16">{_e(chart.title)} ({_e(chart.unit)})</text>',
    ]
    for y in sc.yticks:
        out.append(
            f'<line x1="{left}" x2="{left + w}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
            'stroke="#e5e5e5"/>'
            f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{_fmt_v(y)}</text>'
        )
    for x in sc.xticks:
        out.append(
            f'<text x="{px(x):.1f}" y="{top + h + 16}" text-anchor="middle">{_fmt_t(x)}</text>'
        )
    out.append(
        f'<path d="M{left},{top} V{top + h} H{left + w}" fill="none" stroke="#888"/>'
        f'<text x="{left + w}" y="{_SVG_H - 4}" text-anchor="end">time</text>'
    )
    for i, line in enumerate(chart.lines):
        for seg in _segments(line.points):
            pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in seg)
            out.append(
                f'<polyline data-series="{_e(line.label)}" points="{pts}" fill="none" '
                f'stroke="{line.color}" stroke-width="1.6" stroke-linejoin="round"/>'
            )
        lx = left + w - 110 * (len(chart.lines) - i)
        out.append(
            f'<rect x="{lx}" y="8" width="10" height="10" fill="{line.color}"/>'
            f'<text x="{lx + 14}" y="17">{_e(line.label)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


# -- PNG --------------------------------------------------------------------------------


def png_size(n_charts: int) -> tuple[int, int]:
    return PNG_WIDTH, PNG_HEADER_HEIGHT + math.ceil(n_charts / 2) * PNG_CHART_HEIGHT


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _draw_png(summary: Mapping[str, Any]) -> Image.Image:
    all_charts = charts(summary)
    image = Image.new("RGB", png_size(len(all_charts)), "white")
    draw = ImageDraw.Draw(image)
    title, body, small = _font(22), _font(15), _font(12)
    verdict = summary.get("verdict") or {}
    lat = summary.get("latency_ms") or {}
    draw.text((24, 16), "batchrek run report", fill="#111", font=title)
    draw.text(
        (24, 52),
        f"items {summary.get('items', 0)}   ok {summary.get('ok', 0)}   "
        f"failed {summary.get('failed', 0)}   throttled {summary.get('throttled', 0)}   "
        f"retries {summary.get('retries', 0)}   elapsed {_fmt_t(summary.get('elapsed_s') or 0)}"
        f"   {summary.get('throughput_per_s', 0)}/s   latency p50 {lat.get('p50', 0)} ms"
        f"  p99 {lat.get('p99', 0)} ms",
        fill="#222",
        font=body,
    )
    y = 82
    lines = [f"Limiter: {verdict.get('limiter', '?')}"]
    lines += textwrap.wrap(str(verdict.get("explanation", "")), 140)
    if verdict.get("flag"):
        lines.append(f"Suggestion: {verdict['flag']}")
    for text in lines[:5]:
        draw.text((24, y), text, fill="#1f4f91", font=body)
        y += 20
    for i, chart in enumerate(all_charts):
        x0 = (i % 2) * (PNG_WIDTH // 2)
        y0 = PNG_HEADER_HEIGHT + (i // 2) * PNG_CHART_HEIGHT
        _draw_chart(draw, chart, (x0, y0, PNG_WIDTH // 2, PNG_CHART_HEIGHT), body, small)
    return image


def _draw_chart(
    draw: ImageDraw.ImageDraw,
    chart: Chart,
    box: tuple[int, int, int, int],
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    small: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> None:
    bx, by, bw, bh = box
    left, right, top, bottom = bx + 70, bx + bw - 24, by + 34, by + bh - 40
    sc = _scale(chart)

    def px(x: float) -> float:
        return left + x / sc.xmax * (right - left)

    def py(y: float) -> float:
        return bottom - min(y, sc.ymax) / sc.ymax * (bottom - top)

    draw.text((left, by + 8), f"{chart.title} ({chart.unit})", fill="#111", font=font)
    for y in sc.yticks:
        draw.line([(left, py(y)), (right, py(y))], fill="#e5e5e5")
        draw.text((left - 8, py(y)), _fmt_v(y), fill="#444", font=small, anchor="rm")
    for x in sc.xticks:
        draw.text((px(x), bottom + 6), _fmt_t(x), fill="#444", font=small, anchor="mt")
    draw.line([(left, top), (left, bottom), (right, bottom)], fill="#888", width=1)
    draw.text((right, bottom + 22), "time", fill="#444", font=small, anchor="rt")
    for i, line in enumerate(chart.lines):
        for seg in _segments(line.points):
            pts = [(px(x), py(y)) for x, y in seg]
            if len(pts) == 1:
                draw.ellipse(
                    [pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=line.color
                )
            else:
                draw.line(pts, fill=line.color, width=2, joint="curve")
        lx = right - 110 * (len(chart.lines) - i)
        draw.rectangle([lx, by + 10, lx + 10, by + 20], fill=line.color)
        draw.text((lx + 14, by + 8), line.label, fill="#333", font=small)


# -- formatting -------------------------------------------------------------------------


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def _fmt_v(v: float) -> str:
    if v >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


def _fmt_t(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s % 60 else f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v))
