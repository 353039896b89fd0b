"""The run picture from ``--metrics-out`` files: one run, or several compared.

- ``model``: the charts (measurements, and the limits that bound them drawn dashed:
  the rate limit, the live in-flight cap and --concurrency, the workers, one core),
  their scales, the identity and headline rows.
- ``html``: a self-contained page (inline SVG, no JavaScript).
- ``png``: the same with Pillow, for where HTML does not render.
- ``compare``: several runs side by side: settings that differ, who was faster, why.

The format comes from the output's extension, ``.html``/``.htm`` or ``.png``; any
other is refused (``ConfigError``: exit 2) rather than written as HTML under a name
that says otherwise.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image

from batchrek.errors import ConfigError
from batchrek.observe.report.html import render_compare_html, render_html
from batchrek.observe.report.model import charts, compare_charts, run_label
from batchrek.observe.report.png import draw_compare_png, draw_png
from batchrek.safefile import atomic_write

__all__ = [
    "REPORT_EXTENSIONS",
    "charts",
    "compare_charts",
    "labels_for",
    "render_compare_html",
    "render_html",
    "report_format",
    "write_report",
]

REPORT_EXTENSIONS = {".html": "html", ".htm": "html", ".png": "png"}


def report_format(out_path: str) -> str:
    """``html`` or ``png`` from the name; ConfigError for anything else."""
    ext = os.path.splitext(out_path)[1].lower()
    fmt = REPORT_EXTENSIONS.get(ext)
    if fmt is None:
        raise ConfigError(
            f"cannot write a report to {out_path!r}: name it .html or .png "
            + (f"(not {ext})" if ext else "(it has no extension)")
        )
    return fmt


def write_report(
    metrics: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    out_path: str,
    *,
    labels: Sequence[str] | None = None,
) -> None:
    """Write one run's report, or, given several metrics documents, their comparison
    (``labels`` name the runs; default A, B, ...)."""
    fmt = report_format(out_path)
    if isinstance(metrics, Mapping):
        if fmt == "png":
            _write_png(out_path, draw_png(metrics))
        else:
            _write_text(out_path, render_html(metrics))
        return
    runs = list(metrics)
    names = list(labels) if labels is not None else [chr(65 + i) for i in range(len(runs))]
    if fmt == "png":
        _write_png(out_path, draw_compare_png(runs, names))
    else:
        _write_text(out_path, render_compare_html(runs, names))


def labels_for(paths: Sequence[str]) -> list[str]:
    """Short, distinct run names for a comparison: file names, numbered if they clash."""
    names = [run_label({}, p) for p in paths]
    if len(set(names)) < len(names):
        names = [f"{i + 1}:{n}" for i, n in enumerate(names)]
    return names


def _write_text(path: str, text: str) -> None:
    """Replaced atomically through a new temporary file (``batchrek.safefile``)."""
    atomic_write(path, text.encode("utf-8"))


def _write_png(path: str, image: Image.Image) -> None:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write(path, buf.getvalue())
