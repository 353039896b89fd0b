"""The progress reporter: log lines off a terminal, a live table on one."""

from __future__ import annotations

import io
import logging

import anyio
import pytest
from rich.console import Console

from batchrek.clock import FakeClock
from batchrek.observe import RunMetrics
from batchrek.observe.progress import format_duration, format_line, render, run_progress


class _StopAfter(FakeClock):
    """A fake clock that cancels the reporter after ``n`` sleeps."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.scope: anyio.CancelScope | None = None

    async def sleep(self, seconds: float) -> None:
        if len(self.slept) >= self.n and self.scope is not None:
            self.scope.cancel()
        await super().sleep(seconds)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> _Records:
    handler = _Records()
    logger = logging.getLogger("test.progress")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler


def _snap(**over: object) -> dict[str, object]:
    snap: dict[str, object] = {
        "t": 10.0,
        "done": 50,
        "total": 200,
        "images_done": 25,
        "images_total": 100,
        "images_per_s": 2.5,
        "ok": 48,
        "failed": 2,
        "skipped": 0,
        "throttled": 3,
        "retries": 3,
        "requests": 53,
        "in_flight": 7,
        "concurrency_limit": 16,
        "per_s": 5.0,
        "rate": {"detect_labels": 40.0},
        "eta_s": 30.0,
    }
    snap.update(over)
    return snap


async def _run(clock: _StopAfter, **kw: object) -> RunMetrics:
    metrics = RunMetrics(clock, ["detect_labels"])
    with anyio.CancelScope() as scope:
        clock.scope = scope
        await run_progress(metrics, **kw)  # type: ignore[arg-type]
    return metrics


def test_log_line_counts_images_and_pairs_apart() -> None:
    line = format_line(_snap())
    assert ("images=25/100 (25.0%)" in line, "pairs=50/200 (25.0%)" in line) == (True, True)


def test_log_line_rates_are_images_and_pairs_per_second() -> None:
    line = format_line(_snap())
    assert ("images/s=2.50" in line, "pairs/s=5.00" in line) == (True, True)


def test_log_line_rates_keep_three_significant_digits() -> None:
    assert "rate[detect_labels]=71.8 " in format_line(_snap(rate={"detect_labels": 71.8149}))


def test_log_line_shows_the_eta() -> None:
    assert "eta=30s" in format_line(_snap())


def test_log_line_without_a_total_shows_the_count_only() -> None:
    assert "pairs=50 " in format_line(_snap(total=None, images_total=None, eta_s=None))


def test_unlimited_rate_is_spelled_out() -> None:
    assert "rate[detect_labels]=unlimited" in format_line(_snap(rate={"detect_labels": None}))


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "?"), (42.4, "42s"), (125, "2m05s"), (7260, "2h01m")]
)
def test_durations_read_naturally(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def _shown(width: int, **over: object) -> str:
    console = Console(file=io.StringIO(), width=width)
    console.print(render(_snap(**over)))
    return console.file.getvalue()  # type: ignore[attr-defined,no-any-return]


def test_live_display_shows_in_flight_against_the_cap() -> None:
    assert "in flight 7/16" in _shown(120)


def test_live_display_counts_images_per_second_not_pairs() -> None:
    shown = _shown(120)
    assert ("2.50 images/s" in shown, "5.00 pairs/s" in shown) == (True, True)


@pytest.mark.parametrize("width", [60, 40])
def test_a_narrow_terminal_keeps_the_total_and_the_eta(width: int) -> None:
    shown = _shown(width, images_done=1_234_567, images_total=10_000_000, eta_s=7260)
    assert ("1,234,567/10,000,000" in shown, "ETA 2h01m" in shown) == (True, True)


def test_no_line_of_the_live_display_is_wider_than_the_terminal() -> None:
    rates = {"detect_labels": 48.0, "detect_moderation_labels": 20.0}
    shown = _shown(
        60, images_done=1_234_567, images_total=10_000_000, done=2_469_134, total=20_000_000,
        rate=rates,
    )  # fmt: skip
    assert max(len(line) for line in shown.splitlines()) <= 60


@pytest.mark.anyio
async def test_off_a_terminal_it_logs_one_line_per_interval(records: _Records) -> None:
    console = Console(file=io.StringIO(), force_terminal=False)
    await _run(
        _StopAfter(3),
        interval_s=10.0,
        live=True,
        logger=logging.getLogger("test.progress"),
        console=console,
    )
    assert len(records.records) == 3


@pytest.mark.anyio
async def test_log_records_carry_the_snapshot(records: _Records) -> None:
    console = Console(file=io.StringIO(), force_terminal=False)
    await _run(_StopAfter(1), live=True, logger=logging.getLogger("test.progress"), console=console)
    assert records.records[0].progress["done"] == 0  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_no_progress_on_a_terminal_still_logs(records: _Records) -> None:
    console = Console(file=io.StringIO(), force_terminal=True)
    await _run(
        _StopAfter(2), live=False, logger=logging.getLogger("test.progress"), console=console
    )
    assert len(records.records) == 2


@pytest.mark.anyio
async def test_on_a_terminal_it_draws_the_live_table(records: _Records) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    await _run(_StopAfter(2), live=True, logger=logging.getLogger("test.progress"), console=console)
    assert "in flight" in out.getvalue()


@pytest.mark.anyio
async def test_on_a_terminal_it_does_not_log(records: _Records) -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    await _run(_StopAfter(2), live=True, logger=logging.getLogger("test.progress"), console=console)
    assert records.records == []
