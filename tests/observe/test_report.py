"""The run picture: the run's identity on top, each measurement against its limit,
sensible precision, an HTML page of SVGs and a PNG, and several runs compared."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from batchrek.clock import FakeClock
from batchrek.errors import ConfigError
from batchrek.models import Result
from batchrek.observe import RunMetrics
from batchrek.observe.report import (
    charts,
    compare_charts,
    render_compare_html,
    render_html,
    write_report,
)

TICKS = 30
CHART_TITLES = (
    "Requests and completions per second",
    "Throttled per second",
    "In flight",
    "Service latency",
    "Waiting for a rate token",
    "Client CPU",
)
IDENTITY = {
    "version": "9.9.9",
    "manifest": "s3://photos/manifest.jsonl",
    "output": "results.jsonl",
    "operations": ["detect_labels"],
    "region": "eu-west-1",
    "concurrency": 16,
    "rate": "auto",
    "shard_index": 0,
    "shard_count": 1,
}


def _summary(*, with_rate: bool = False, latency: float = 0.1, calls: int = 7) -> dict[str, Any]:
    clock = FakeClock()
    m = RunMetrics(clock, ["detect_labels"], wall=lambda: 0.0, cpu=lambda: 0.0)
    m.describe(IDENTITY)
    m.set_capacity(concurrency=16, workers=20)
    for second in range(TICKS):
        if with_rate:
            m.set_rate("detect_labels", 10.0 + second)
        for _ in range(second % calls + 1):
            m.attempt_started("detect_labels")
            m.attempt_finished("detect_labels", latency + second / 1000, outcome="ok")
            m.record_result(Result("a", "a.jpg", "detect_labels", "ok", "bytes", 1, 100.0), 0.2)
        clock.advance(1.0)
        m.tick()
    m.finish()
    return m.summary()


def _svgs(page: str) -> dict[str, str]:
    """Each chart's SVG, by its aria-label."""
    return dict(re.findall(r'<svg[^>]*aria-label="([^"]+)"[^>]*>(.*?)</svg>', page, re.S))


def _polylines(svg: str, *, dashed: bool | None = None) -> list[int]:
    """The number of points of each polyline (only dashed ones, or only solid ones)."""
    found = re.findall(r"<polyline([^>]*)/>", svg)
    out = []
    for attrs in found:
        if dashed is not None and ("stroke-dasharray" in attrs) != dashed:
            continue
        out.append(len(re.search(r'points="([^"]*)"', attrs).group(1).split()))  # type: ignore[union-attr]
    return out


def _series(svg: str) -> list[str]:
    return re.findall(r'<polyline data-series="([^"]+)"', svg)


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(_summary(with_rate=True))


def test_html_has_one_svg_per_chart() -> None:
    assert set(_svgs(render_html(_summary()))) == set(CHART_TITLES)


@pytest.mark.parametrize("title", CHART_TITLES)
def test_each_measured_line_has_a_point_per_timeline_entry(page: str, title: str) -> None:
    assert set(_polylines(_svgs(page)[title], dashed=False)) == {TICKS}


def test_the_in_flight_chart_draws_the_concurrency_cap(page: str) -> None:
    assert "--concurrency 16" in _series(_svgs(page)["In flight"])


def test_the_concurrency_cap_is_dashed(page: str) -> None:
    assert _polylines(_svgs(page)["In flight"], dashed=True) == [2]


def test_the_request_chart_draws_the_rate_limit_dashed(page: str) -> None:
    svg = _svgs(page)["Requests and completions per second"]
    assert ("rate limit" in _series(svg), _polylines(svg, dashed=True)) == (True, [TICKS])


def test_an_unlimited_rate_draws_no_rate_line() -> None:
    svg = _svgs(render_html(_summary()))["Requests and completions per second"]
    assert "rate limit" not in _series(svg)


def test_token_waiting_has_its_own_chart_against_the_workers(page: str) -> None:
    assert "20 workers" in _series(_svgs(page)["Waiting for a rate token"])


def test_the_latency_chart_draws_p50_and_p99(page: str) -> None:
    assert _series(_svgs(page)["Service latency"]) == ["p50", "p99"]


@pytest.mark.parametrize(
    "shown",
    ["9.9.9", "s3://photos/manifest.jsonl", "results.jsonl", "eu-west-1", "1970-01-01T00:00:00Z"],
)
def test_the_run_is_named_before_the_verdict(page: str, shown: str) -> None:
    assert page.index(shown) < page.index("Limited by")


def _significant(number: str) -> int:
    """Significant digits written: ``0.0523`` 3, ``52.4`` 3, ``1,106`` (whole) 0."""
    if "." not in number:
        return 0
    return len(number.replace(",", "").replace(".", "").lstrip("0"))


def test_numbers_carry_no_false_precision() -> None:
    page = render_html(_summary(latency=0.052355))
    summary_table = page[page.index("<h2>Summary</h2>") : page.index("<h2>Over time</h2>")]
    numbers = re.findall(r"\d[\d,]*\.\d+", summary_table)
    assert (len(numbers) > 5, [n for n in numbers if _significant(n) > 3]) == (True, [])


def test_html_needs_no_script(page: str) -> None:
    assert "<script" not in page


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


def test_an_older_metrics_file_without_identity_still_renders() -> None:
    assert len(_svgs(render_html({}))) == len(CHART_TITLES)


def test_write_report_writes_html(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    write_report(_summary(), str(out))
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")


def test_write_report_draws_a_png(tmp_path: Path) -> None:
    out = tmp_path / "report.png"
    write_report(_summary(), str(out))
    with Image.open(out) as image:
        assert (image.format, image.width) == ("PNG", 1200)


def test_the_png_has_a_row_of_charts_per_two_charts(tmp_path: Path) -> None:
    one, more = tmp_path / "one.png", tmp_path / "more.png"
    write_report(_summary(), str(one))
    two_ops = _summary()
    two_ops["timeline"] = [{**r, "rate": {"a": 1.0, "b": 2.0}} for r in two_ops["timeline"]]
    write_report(two_ops, str(more))  # a 7th chart: the rate by operation
    with Image.open(one) as a, Image.open(more) as b:
        assert b.height - a.height == 330


@pytest.mark.parametrize("name", ["r.pdf", "r.svg", "report", "r.html.txt"])
def test_an_unknown_extension_is_refused_and_nothing_is_written(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=r"\.html or \.png"):
        write_report(_summary(), str(tmp_path / name))
    assert list(tmp_path.iterdir()) == []


# -- several runs ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_runs() -> list[dict[str, Any]]:
    slow = _summary(calls=2)
    fast = _summary(calls=9)
    fast["run"] = {**fast["run"], "concurrency": 64}
    return [slow, fast]


def test_comparison_draws_one_line_per_run_on_each_chart(two_runs: list[dict[str, Any]]) -> None:
    for chart in compare_charts(two_runs, ["slow", "fast"]):
        solid = [line.label for line in chart.lines if not line.dashed]
        assert solid == ["slow", "fast"], chart.title


def test_comparison_charts_share_the_time_axis(two_runs: list[dict[str, Any]]) -> None:
    page = render_compare_html(two_runs, ["slow", "fast"])
    axes = {re.findall(r'text-anchor="middle">([^<]+)<', svg).__repr__() for svg in
            _svgs(page).values()}  # fmt: skip
    assert len(axes) == 1


def test_comparison_marks_the_setting_that_differs(two_runs: list[dict[str, Any]]) -> None:
    page = render_compare_html(two_runs, ["slow", "fast"])
    row = re.search(r"<tr><td>concurrency</td>(.*?)</tr>", page).group(1)  # type: ignore[union-attr]
    assert row == '<td class="differs">16</td><td class="differs">64</td>'


def test_comparison_names_the_faster_run(two_runs: list[dict[str, Any]]) -> None:
    assert "Fastest: fast at" in render_compare_html(two_runs, ["slow", "fast"])


def test_comparison_writes_a_png(tmp_path: Path, two_runs: list[dict[str, Any]]) -> None:
    out = tmp_path / "compare.png"
    write_report(two_runs, str(out), labels=["slow", "fast"])
    with Image.open(out) as image:
        assert image.format == "PNG"
