"""The report as a PNG, drawn with Pillow (already a dependency for images): for a
chat message or a ticket where HTML will not render. Same charts and scales as the
HTML; the header holds the run's identity, headline and verdict."""

from __future__ import annotations

import itertools
import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from batchrek.observe.report.compare import compare
from batchrek.observe.report.model import (
    Chart,
    charts,
    compare_charts,
    drawing_order,
    fmt_tick,
    fmt_time,
    headline_rows,
    identity_rows,
    in_legend,
    scale,
    segments,
)

__all__ = ["PNG_CHART_HEIGHT", "PNG_WIDTH", "draw_compare_png", "draw_png", "png_size"]

PNG_WIDTH = 1200
PNG_CHART_HEIGHT = 330
_LINE = 20
_WRAP = 150  # characters per header line

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def png_size(n_charts: int, header_lines: int) -> tuple[int, int]:
    header = 60 + header_lines * _LINE + 16
    return PNG_WIDTH, header + math.ceil(n_charts / 2) * PNG_CHART_HEIGHT


def _font(size: int) -> Font:
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def draw_png(summary: Mapping[str, Any]) -> Image.Image:
    ident = dict(identity_rows(summary))
    verdict = summary.get("verdict") or {}
    lines: list[tuple[str, str]] = []
    for text in _wrap(
        "   ".join(f"{k} {ident[k]}" for k in ("version", "started", "duration", "manifest"))
    ):
        lines.append((text, "#333"))
    for text in _wrap(
        "   ".join(f"{k} {ident[k]}" for k in
                   ("output", "operations", "region", "concurrency", "rate", "shard"))
    ):  # fmt: skip
        lines.append((text, "#333"))
    for text in _wrap("   ".join(f"{k}: {v}" for k, v in headline_rows(summary)[:8])):
        lines.append((text, "#222"))
    lines.append((f"Limited by: {verdict.get('limiter', '?')}", "#1f4f91"))
    lines += [(t, "#1f4f91") for t in _wrap(str(verdict.get("explanation", "")))]
    try_this = verdict.get("flag") or (verdict.get("setting") or "").replace("\n", "; ")
    advice = verdict.get("suggestion") or ""
    if try_this or advice:
        text = f"Try {try_this}: {advice}" if try_this else f"Try: {advice}"
        lines += [(t, "#1f4f91") for t in _wrap(text)]
    title = f"batchrek run report: {ident['manifest']}"
    return _draw(title, lines, charts(summary), xmax=None)


def draw_compare_png(summaries: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> Image.Image:
    cmp = compare(summaries, labels)
    lines: list[tuple[str, str]] = []
    for line in cmp.conclusion:
        lines += [(t, "#1f4f91") for t in _wrap(line)]
    for name, cells, differs in cmp.settings:
        if differs or name in ("concurrency", "rate"):
            row = "   ".join(f"{label}: {c}" for label, c in zip(cmp.labels, cells, strict=True))
            lines.append((f"{name}  {row}", "#8a5a00" if differs else "#333"))
    for name, cells in cmp.results:
        row = "   ".join(f"{label}: {c}" for label, c in zip(cmp.labels, cells, strict=True))
        lines += [(t, "#222") for t in _wrap(f"{name}  {row}")]
    xmax = max((float(s.get("elapsed_s") or 0.0) for s in summaries), default=1.0)
    title = f"batchrek: {len(labels)} runs compared"
    return _draw(title, lines, compare_charts(summaries, labels), xmax=xmax)


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(text, _WRAP) or [""]


def _draw(
    title: str, lines: Sequence[tuple[str, str]], all_charts: Sequence[Chart], *, xmax: float | None
) -> Image.Image:
    image = Image.new("RGB", png_size(len(all_charts), len(lines)), "white")
    draw = ImageDraw.Draw(image)
    big, body, small = _font(22), _font(14), _font(12)
    draw.text((24, 16), title[:110], fill="#111", font=big)
    y = 56
    for text, color in lines:
        draw.text((24, y), text, fill=color, font=body)
        y += _LINE
    top = y + 16
    half = PNG_WIDTH // 2
    for i, chart in enumerate(all_charts):
        box = ((i % 2) * half, top + (i // 2) * PNG_CHART_HEIGHT, half, PNG_CHART_HEIGHT)
        _draw_chart(draw, chart, box, body, small, xmax=xmax)
    return image


def _draw_chart(
    draw: ImageDraw.ImageDraw,
    chart: Chart,
    box: tuple[int, int, int, int],
    font: Font,
    small: Font,
    *,
    xmax: float | None,
) -> None:
    bx, by, bw, bh = box
    left, right, top, bottom = bx + 70, bx + bw - 24, by + 50, by + bh - 40
    sc = scale(chart, xmax=xmax)

    def px(x: float) -> float:
        return left + x / sc.xmax * (right - left)

    def py(y: float) -> float:
        return bottom - min(y, sc.ymax) / sc.ymax * (bottom - top)

    draw.text((left, by + 6), f"{chart.title} ({chart.unit})", fill="#111", font=font)
    for y in sc.yticks:
        draw.line([(left, py(y)), (right, py(y))], fill="#e5e5e5")
        draw.text((left - 8, py(y)), fmt_tick(y), fill="#444", font=small, anchor="rm")
    for x in sc.xticks:
        draw.text((px(x), bottom + 6), fmt_time(x), fill="#444", font=small, anchor="mt")
    draw.line([(left, top), (left, bottom), (right, bottom)], fill="#888", width=1)
    draw.text((right, bottom + 22), "time", fill="#444", font=small, anchor="rt")
    lx = left
    for line in drawing_order(chart):
        for seg in segments(line.points):
            pts = [(px(x), py(y)) for x, y in seg]
            if len(pts) == 1:
                x0, y0 = pts[0]
                draw.ellipse([x0 - 2, y0 - 2, x0 + 2, y0 + 2], fill=line.color)
            elif line.dashed:
                _dashed(draw, pts, line.color)
            else:
                draw.line(pts, fill=line.color, width=2, joint="curve")
    for line in in_legend(chart):
        if line.dashed:
            _dashed(draw, [(lx, by + 34), (lx + 14, by + 34)], line.color)
        else:
            draw.line([(lx, by + 34), (lx + 14, by + 34)], fill=line.color, width=3)
        draw.text((lx + 18, by + 27), line.label, fill="#333", font=small)
        lx += 30 + int(draw.textlength(line.label, font=small))


def _dashed(
    draw: ImageDraw.ImageDraw, pts: Sequence[tuple[float, float]], color: str, dash: float = 7.0
) -> None:
    """A polyline drawn as dashes of ``dash`` px with equal gaps, continuous over joints."""
    on, left = True, dash
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        length = math.hypot(x1 - x0, y1 - y0)
        pos = 0.0
        while pos < length:
            step = min(left, length - pos)
            if on:
                a, b = pos / length, (pos + step) / length
                dx, dy = x1 - x0, y1 - y0
                ends = [(x0 + dx * a, y0 + dy * a), (x0 + dx * b, y0 + dy * b)]
                draw.line(ends, fill=color, width=2)
            pos += step
            left -= step
            if left <= 0:
                on, left = not on, dash
