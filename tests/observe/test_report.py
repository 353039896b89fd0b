"""The run picture: one SVG per chart in the HTML, a legible PNG of the right size."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from batchrek.clock import FakeClock
from batchrek.models import Result
from batchrek.observe import RunMetrics
from batchrek.observe.report import charts, png_size, render_html, write_report

TICKS = 30
CHART_TITLES = ("Completed per second", "Throttled per second", "In flight", "Service latency")


def _summary(*, with_rate: bool = False) -> dict[str, Any]:
    clock = FakeClock()
    m = RunMetrics(clock, ["detect_labels"], wall=lambda: 0.0, cpu=lambda: 0.0)
    for second in range(TICKS):
        if with_rate:
            m.set_rate("detect_labels", 10.0 + second)
        for _ in range(second % 7 + 1):
            m.attempt_started("detect_labels")
            m.attempt_finished("detect_labels", 0.1 + second / 100, outcome="ok")
            m.record_result(Result("a", "a.jpg", "detect_labels", "ok", "bytes", 1, 100.0), 0.2)
        clock.advance(1.0)
        m.tick()
    m.finish()
    return m.summary()


def _svgs(page: str) -> dict[str, str]:
    """Each chart's SVG, by its aria-label."""
    return dict(re.findall(r'<svg[^>]*aria-label="([^"]+)"[^>]*>(.*?)</svg>', page, re.S))


def _polylines(svg: str) -> list[int]:
    """The number of points of each polyline."""
    return [len(p.split()) for p in re.findall(r'<polyline[^>]*points="([^"]*)"', svg)]


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(_summary())


def test_html_has_one_svg_per_chart(page: str) -> None:
    assert set(_svgs(page)) == set(CHART_TITLES)


@pytest.mark.parametrize("title", CHART_TITLES)
def test_each_polyline_has_a_point_per_timeline_entry(page: str, title: str) -> None:
    assert set(_polylines(_svgs(page)[title])) == {TICKS}


def test_latency_chart_draws_p50_and_p99(page: str) -> None:
    assert len(_polylines(_svgs(page)["Service latency"])) == 2


def test_html_shows_the_verdict(page: str) -> None:
    assert "Limiter: " in page


def test_html_needs_no_script(page: str) -> None:
    assert "<script" not in page


def test_a_rate_chart_appears_when_a_rate_was_set() -> None:
    assert "Rate limit" in _svgs(render_html(_summary(with_rate=True)))


def test_text_from_the_metrics_file_is_escaped() -> None:
    summary = {"verdict": {"limiter": "none", "explanation": "<b>x</b>", "flag": ""}}
    assert "&lt;b&gt;x&lt;/b&gt;" in render_html(summary)


def test_a_gap_in_the_data_breaks_the_line() -> None:
    rows = [{"t": float(t), "p50_ms": None if t == 3 else 10.0, "p99_ms": 20.0} for t in range(6)]
    svg = _svgs(render_html({"timeline": rows}))["Service latency"]
    assert sorted(_polylines(svg)) == [2, 3, 6]  # p50: t 0-2 and 4-5; p99 unbroken


def test_charts_keep_the_gap_as_a_missing_value() -> None:
    rows = [{"t": 1.0, "p50_ms": None}, {"t": 2.0, "p50_ms": 5.0}]
    latency = next(c for c in charts({"timeline": rows}) if c.title == "Service latency")
    assert latency.lines[0].points == ((1.0, None), (2.0, 5.0))


def test_an_empty_timeline_still_renders() -> None:
    assert len(_svgs(render_html({}))) == len(CHART_TITLES)


def test_write_report_writes_html(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    write_report(_summary(), str(out))
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")


def test_write_report_draws_a_png_of_the_expected_size(tmp_path: Path) -> None:
    out = tmp_path / "report.png"
    write_report(_summary(), str(out))
    with Image.open(out) as image:
        assert (image.format, image.size) == ("PNG", png_size(len(CHART_TITLES)))


def test_png_grows_a_row_for_the_rate_chart(tmp_path: Path) -> None:
    out = tmp_path / "report.png"
    write_report(_summary(with_rate=True), str(out))
    with Image.open(out) as image:
        assert image.size == png_size(len(CHART_TITLES) + 1)
