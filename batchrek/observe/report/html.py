"""The report as one self-contained HTML page: inline SVG charts, no JavaScript, so it
opens from a mail attachment or an S3 console."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from batchrek.observe.numbers import fmt, fmt_count
from batchrek.observe.report.compare import Comparison, compare
from batchrek.observe.report.model import (
    Chart,
    charts,
    compare_charts,
    drawing_order,
    fmt_tick,
    fmt_time,
    headline_rows,
    identity_rows,
    scale,
    segments,
)

__all__ = ["render_compare_html", "render_html"]

_SVG_W, _SVG_H = 560, 250
_MARGIN = (60, 18, 40, 38)  # left, right, top, bottom

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1220px; }
table { border-collapse: collapse; margin: 8px 0 20px; }
td, th { border: 1px solid #ccc; padding: 3px 10px; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
table.identity td { text-align: left; } .identity td:first-child { color: #555; }
td.differs { background: #fff4d6; font-weight: 600; } td.best { background: #e4f5e6; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.verdict { border-left: 4px solid #1f6fd1; background: #f4f8fd; padding: 8px 14px; }
svg text { font: 11px sans-serif; fill: #444; } svg .title { font-size: 13px; fill: #111; }
"""


def render_html(summary: Mapping[str, Any]) -> str:
    run = summary.get("run") or {}
    title = f"batchrek run report: {run.get('manifest', '')}".rstrip(": ")
    figures = "\n".join(_svg(c) for c in charts(summary))
    body = f"""<h1>{_e(title)}</h1>
{_pairs_table(identity_rows(summary), "identity")}
{_verdict_box(summary.get("verdict") or {})}
<h2>Summary</h2>
{_pairs_table(headline_rows(summary), "")}
{_operations_table(summary)}
{_codes_table(summary)}
{_segments_table(summary)}
<h2>Over time</h2>
<div class="charts">
{figures}
</div>"""
    return _page(title, body)


def render_compare_html(summaries: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> str:
    cmp = compare(summaries, labels)
    all_charts = compare_charts(summaries, labels)
    xmax = max((float(s.get("elapsed_s") or 0.0) for s in summaries), default=1.0)
    figures = "\n".join(_svg(c, xmax=xmax) for c in all_charts)
    conclusion = "".join(f"<p>{_e(line)}</p>" for line in cmp.conclusion)
    body = f"""<h1>batchrek: {len(labels)} runs compared</h1>
<div class="verdict">{conclusion}</div>
<h2>Settings</h2>
{_compare_table(cmp, settings=True)}
<h2>Results</h2>
{_compare_table(cmp, settings=False)}
<h2>Over time (shared axes)</h2>
<div class="charts">
{figures}
</div>"""
    return _page("batchrek comparison", body)


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<style>{_STYLE}</style></head><body>
{body}
</body></html>
"""


def _verdict_box(verdict: Mapping[str, Any]) -> str:
    suggestion = verdict.get("suggestion") or ""
    flag = verdict.get("flag") or ""
    setting = verdict.get("setting") or ""
    what = f"<code>{_e(flag)}</code>" if flag else ""
    if setting:
        what += f"<pre>{_e(setting)}</pre>"
    return (
        f'<div class="verdict"><b>Limited by: {_e(verdict.get("limiter", "?"))}</b>'
        f"<p>{_e(verdict.get('explanation', ''))}</p>"
        + (f"<p>Try {what}: {_e(suggestion)}</p>" if what else "")
        + (f"<p>Try: {_e(suggestion)}</p>" if suggestion and not what else "")
        + "</div>"
    )


def _pairs_table(rows: Sequence[tuple[str, str]], cls: str) -> str:
    body = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="{cls}">{body}</table>'


def _operations_table(s: Mapping[str, Any]) -> str:
    ops: Mapping[str, Mapping[str, Any]] = s.get("by_operation") or {}
    if not ops:
        return ""
    heads = ("operation", "requests", "ok", "failed", "throttled", "retries", "p50 ms",
             "p99 ms", "rate (settled)")  # fmt: skip
    body = ""
    for op, o in ops.items():
        lat = o.get("latency_ms") or {}
        cells = (
            op,
            *(fmt_count(o.get(k) or 0) for k in ("requests", "ok", "failed", "throttled")),
            fmt_count(o.get("retries") or 0),
            fmt(lat.get("p50") or 0.0),
            fmt(lat.get("p99") or 0.0),
            "unlimited" if o.get("rate") is None else f"{fmt(o['rate'])}/s",
        )
        body += "<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>"
    head = "".join(f"<th>{h}</th>" for h in heads)
    return f"<h3>By operation</h3><table><tr>{head}</tr>{body}</table>"


def _codes_table(s: Mapping[str, Any]) -> str:
    codes: Mapping[str, int] = s.get("failed_by_code") or {}
    if not codes:
        return ""
    body = "".join(
        f"<tr><td>{_e(c)}</td><td>{fmt_count(n)}</td></tr>"
        for c, n in sorted(codes.items(), key=lambda kv: -kv[1])
    )
    return f"<h3>Failures by code</h3><table><tr><th>code</th><th>pairs</th></tr>{body}</table>"


def _segments_table(s: Mapping[str, Any]) -> str:
    output = s.get("output") or {}
    listed: Sequence[Mapping[str, Any]] = output.get("segments") or []
    if len(listed) < 2:
        return ""
    heads = ("segment", "started", "duration", "ok", "failed", "requests", "throttled", "ended")
    body = ""
    for n, seg in enumerate(listed, 1):
        elapsed = seg.get("elapsed_s")
        cells = (
            n,
            seg.get("started") or "?",
            "?" if elapsed is None else fmt_time(float(elapsed), exact=True),
            *(("?" if seg.get(k) is None else fmt_count(seg[k]))
              for k in ("ok", "failed", "requests", "throttled")),
            seg.get("ended") or "?",
        )  # fmt: skip
        body += "<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>"
    head = "".join(f"<th>{h}</th>" for h in heads)
    totals = output.get("totals") or {}
    note = (
        f"<p>The output as a whole: {fmt_count(totals.get('pairs_done') or 0)} pairs done over "
        f"{len(listed)} segments (runs on the same output).</p>"
    )
    return f"<h3>Segments of this output</h3>{note}<table><tr>{head}</tr>{body}</table>"


def _compare_table(cmp: Comparison, *, settings: bool) -> str:
    head = "<tr><th></th>" + "".join(f"<th>{_e(label)}</th>" for label in cmp.labels) + "</tr>"
    body = ""
    if settings:
        for name, cells, differs in cmp.settings:
            cls = ' class="differs"' if differs else ""
            body += f"<tr><td>{_e(name)}</td>" + "".join(
                f"<td{cls}>{_e(c)}</td>" for c in cells
            ) + "</tr>"  # fmt: skip
    else:
        for name, cells in cmp.results:
            body += f"<tr><td>{_e(name)}</td>"
            for i, c in enumerate(cells):
                cls = ' class="best"' if i == cmp.best and name == "pairs per second" else ""
                body += f"<td{cls}>{_e(c)}</td>"
            body += "</tr>"
    return f'<table class="identity">{head}{body}</table>'


def _svg(chart: Chart, *, xmax: float | None = None) -> str:
    left, right, top, bottom = _MARGIN
    w, h = _SVG_W - left - right, _SVG_H - top - bottom
    sc = scale(chart, xmax=xmax)

    def px(x: float) -> float:
        return left + x / sc.xmax * w

    def py(y: float) -> float:
        return top + h - min(y, sc.ymax) / sc.ymax * h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_SVG_W}" height="{_SVG_H}" '
        f'viewBox="0 0 {_SVG_W} {_SVG_H}" role="img" aria-label="{_e(chart.title)}">',
        f"<title>{_e(chart.title)}</title>",
        f'<text class="title" x="{left}" y="15">{_e(chart.title)} ({_e(chart.unit)})</text>',
    ]
    for y in sc.yticks:
        out.append(
            f'<line x1="{left}" x2="{left + w}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
            'stroke="#e5e5e5"/>'
            f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{fmt_tick(y)}</text>'
        )
    for x in sc.xticks:
        out.append(
            f'<text x="{px(x):.1f}" y="{top + h + 16}" text-anchor="middle">{fmt_time(x)}</text>'
        )
    out.append(
        f'<path d="M{left},{top} V{top + h} H{left + w}" fill="none" stroke="#888"/>'
        f'<text x="{left + w}" y="{_SVG_H - 4}" text-anchor="end">time</text>'
    )
    for line in drawing_order(chart):
        dash = ' stroke-dasharray="6 4"' if line.dashed else ""
        for seg in segments(line.points):
            pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in seg)
            out.append(
                f'<polyline data-series="{_e(line.label)}" points="{pts}" fill="none" '
                f'stroke="{line.color}" stroke-width="1.6" stroke-linejoin="round"{dash}/>'
            )
    lx: float = left
    for line in chart.lines:
        dash = ' stroke-dasharray="6 4"' if line.dashed else ""
        if line.legend:
            out.append(
                f'<line x1="{lx}" x2="{lx + 14}" y1="27" y2="27" stroke="{line.color}" '
                f'stroke-width="3"{dash}/><text x="{lx + 18}" y="31">{_e(line.label)}</text>'
            )
            lx += 26 + 6.2 * len(line.label)
    out.append("</svg>")
    return "\n".join(out)


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v))
