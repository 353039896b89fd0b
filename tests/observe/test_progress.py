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


def test_log_line_shows_done_of_total() -> None:
    assert "done=50/200 (25.0%)" in format_line(_snap())


def test_log_line_shows_the_eta() -> None:
    assert "eta=30s" in format_line(_snap())


def test_log_line_without_a_total_shows_the_count_only() -> None:
    assert "done=50 " in format_line(_snap(total=None, eta_s=None))


def test_unlimited_rate_is_spelled_out() -> None:
    assert "rate[detect_labels]=unlimited" in format_line(_snap(rate={"detect_labels": None}))


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "?"), (42.4, "42s"), (125, "2m05s"), (7260, "2h01m")]
)
def test_durations_read_naturally(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_live_table_shows_in_flight_against_the_cap() -> None:
    console = Console(file=io.StringIO(), width=120)
    console.print(render(_snap()))
    assert "7/16" in console.file.getvalue()  # type: ignore[attr-defined]


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
