"""RunMetrics and Histogram: what the pipeline records is what the summary says."""

from __future__ import annotations

import random

import pytest

from batchrek.clock import FakeClock
from batchrek.models import ErrorInfo, Result
from batchrek.observe import Histogram, RunMetrics

OPS = ("detect_labels", "detect_faces")


def _result(op: str = "detect_labels", *, code: str | None = None, mode: str = "bytes") -> Result:
    return Result(
        id="a",
        source="s3://b/a.jpg",
        operation=op,
        status="error" if code else "ok",
        input=mode,  # type: ignore[arg-type]
        attempts=2 if code else 1,
        latency_ms=12.0,
        error=ErrorInfo(code, "bad") if code else None,
    )


def _metrics(clock: FakeClock | None = None, **kw: object) -> RunMetrics:
    return RunMetrics(clock or FakeClock(), OPS, wall=lambda: 1_000.0, cpu=lambda: 0.0, **kw)  # type: ignore[arg-type]


def _call(
    m: RunMetrics, op: str = "detect_labels", seconds: float = 0.2, outcome: str = "ok"
) -> None:
    m.attempt_started(op)
    m.attempt_finished(op, seconds, outcome=outcome)


# -- Histogram --------------------------------------------------------------------------


def test_histogram_quantiles_stay_within_two_percent() -> None:
    rng = random.Random(7)
    values = sorted(rng.lognormvariate(-2, 1) for _ in range(20_000))
    h = Histogram()
    for v in values:
        h.record(v)
    for q in (0.5, 0.9, 0.99):
        exact = values[int(q * (len(values) - 1))]
        assert h.quantile(q) == pytest.approx(exact, rel=0.021)


def test_histogram_memory_does_not_grow_with_values() -> None:
    h = Histogram()
    buckets = h.bucket_count
    for i in range(50_000):
        h.record(i * 1e-3)
    assert h.bucket_count == buckets < 500


def test_histogram_keeps_the_exact_max_beyond_its_range() -> None:
    h = Histogram()
    h.record(0.1)
    h.record(7200.0)
    assert h.max == 7200.0


def test_histogram_merge_equals_recording_everything_in_one() -> None:
    a, b, both = Histogram(), Histogram(), Histogram()
    for i in range(1, 500):
        (a if i % 2 else b).record(i / 100)
        both.record(i / 100)
    a.merge(b)
    assert (a.count, a.quantile(0.5), a.quantile(0.99), a.max) == (
        both.count,
        both.quantile(0.5),
        both.quantile(0.99),
        both.max,
    )


def test_histogram_refuses_to_merge_a_different_layout() -> None:
    with pytest.raises(ValueError, match="layouts"):
        Histogram().merge(Histogram(relative_error=0.01))


def test_empty_histogram_reports_zeros() -> None:
    assert Histogram().summary_ms()["p99"] == 0.0


# -- RunMetrics: counters ----------------------------------------------------------------


def test_summary_has_the_contract_keys() -> None:
    s = _metrics().summary()
    contract = {
        "items", "requests", "ok", "failed", "skipped", "retries", "throttled", "elapsed_s",
        "throughput_per_s", "latency_ms", "by_operation", "input", "failed_by_code",
        "prepare_ms", "transcodes", "deduplicated", "timeline", "verdict",
    }  # fmt: skip
    assert contract <= s.keys()
    assert {"p50", "p90", "p99", "max"} <= s["latency_ms"].keys()
    assert {"latency_ms", "token_wait_ms", "end_to_end_ms", "rate"} <= s["by_operation"][
        "detect_labels"
    ].keys()


def test_record_result_counts_ok_and_failures_by_code() -> None:
    m = _metrics()
    m.record_result(_result(), 0.3)
    m.record_result(_result(code="InvalidImageFormatException"), 0.3)
    m.record_result(_result(code="InvalidImageFormatException"), 0.3)
    s = m.summary()
    assert (s["ok"], s["failed"], s["failed_by_code"]) == (
        1,
        2,
        {"InvalidImageFormatException": 2},
    )


def test_record_result_counts_input_routes() -> None:
    m = _metrics()
    m.record_result(_result(mode="bytes"), 0.1)
    m.record_result(_result(mode="s3object"), 0.1)
    m.record_result(_result("detect_faces", mode="s3object"), 0.1)
    assert m.summary()["input"] == {"bytes": 1, "s3object": 2}


def test_in_flight_follows_started_and_finished_attempts() -> None:
    m = _metrics()
    m.attempt_started("detect_labels")
    m.attempt_started("detect_faces")
    m.attempt_finished("detect_faces", 0.1, outcome="ok")
    assert m.in_flight == 1


def test_throttled_outcomes_are_counted_but_kept_out_of_latency() -> None:
    m = _metrics()
    _call(m, seconds=0.5)
    _call(m, seconds=0.001, outcome="throttled")
    s = m.summary()
    assert (s["requests"], s["throttled"], s["latency_ms"]["count"]) == (2, 1, 1)


def test_retries_are_counted_by_code() -> None:
    m = _metrics()
    m.retried("detect_labels", "ThrottlingException")
    m.retried("detect_labels", "ThrottlingException")
    op = m.summary()["by_operation"]["detect_labels"]
    assert op["retries_by_code"] == {"ThrottlingException": 2}


def test_prepare_and_transcodes_are_summarised() -> None:
    m = _metrics()
    m.observe_prepare(0.02, transcoded=False, mode="s3object")
    m.observe_prepare(0.5, transcoded=True, mode="bytes")
    s = m.summary()
    assert (s["transcodes"], s["prepare_ms"]["count"]) == ({"count": 1, "seconds": 0.5}, 2)


def test_an_unannounced_operation_is_still_counted() -> None:
    m = _metrics()
    m.record_result(_result("detect_text"), 0.1)
    assert m.summary()["by_operation"]["detect_text"]["ok"] == 1


def test_throughput_is_finished_pairs_over_elapsed() -> None:
    clock = FakeClock()
    m = _metrics(clock)
    for _ in range(30):
        m.record_result(_result(), 0.1)
    clock.advance(10.0)
    assert m.summary()["throughput_per_s"] == 3.0


def test_finish_freezes_elapsed() -> None:
    clock = FakeClock()
    m = _metrics(clock)
    clock.advance(5.0)
    m.finish()
    clock.advance(100.0)
    assert m.summary()["elapsed_s"] == 5.0


def test_last_success_is_stamped_in_wall_time() -> None:
    clock = FakeClock(start=50.0)
    m = _metrics(clock)  # wall() == 1000.0 at start
    clock.advance(7.0)
    m.record_result(_result(), 0.1)
    assert m.summary()["last_success_unix"] == 1007.0


def test_settled_rate_is_the_median_of_a_short_runs_second_half() -> None:
    clock = FakeClock()
    m = _metrics(clock)
    for rate in (60.0, 48.0, 51.0, 40.0, 41.0, 38.0, 40.0, 39.0):  # a search, then held
        m.set_rate("detect_labels", rate)
        clock.advance(1.0)
        m.tick()
    assert m.summary()["by_operation"]["detect_labels"]["rate"] == 40.0


def test_settled_rate_is_the_median_of_the_last_minute() -> None:
    clock = FakeClock()
    m = _metrics(clock)
    for second in range(300):
        m.set_rate("detect_labels", 10.0 if second < 240 else 20.0 + second % 3)
        clock.advance(1.0)
        m.tick()
    assert m.summary()["by_operation"]["detect_labels"]["rate"] == 21.0


def test_summary_carries_a_verdict() -> None:
    clock = FakeClock()
    m = _metrics(clock)
    for _ in range(100):
        _call(m, outcome="throttled")
    clock.advance(10.0)
    m.tick()
    assert m.summary()["verdict"]["limiter"] == "quota"


# -- RunMetrics: the timeline and the snapshot -------------------------------------------


def test_tick_samples_the_last_second() -> None:
    clock = FakeClock()
    m = _metrics(clock)
    for _ in range(4):
        _call(m)
        m.record_result(_result(), 0.2)
    _call(m, outcome="throttled")
    clock.advance(1.0)
    m.tick()
    point = m.summary()["timeline"][0]
    assert (point["t"], point["ok_per_s"], point["throttled_per_s"], point["requests"]) == (
        1.0,
        4.0,
        1.0,
        5,
    )


def test_tick_reports_the_window_latency_percentiles() -> None:
    clock = FakeClock()
    m = _metrics(clock)
    _call(m, seconds=0.5)
    clock.advance(1.0)
    m.tick()
    _call(m, seconds=0.1)
    clock.advance(1.0)
    m.tick()
    p50s = [p["p50_ms"] for p in m.summary()["timeline"]]
    assert p50s == [pytest.approx(500, rel=0.02), pytest.approx(100, rel=0.02)]


def test_a_second_without_calls_has_no_latency() -> None:
    clock = FakeClock()
    m = _metrics(clock)
    clock.advance(1.0)
    m.tick()
    assert m.summary()["timeline"][0]["p99_ms"] is None


def test_timeline_stays_bounded_by_merging_neighbours() -> None:
    clock = FakeClock()
    m = _metrics(clock, max_points=10)
    for _ in range(1000):
        clock.advance(1.0)
        m.tick()
    assert len(m.timeline) <= 10


def test_downsampled_timeline_ends_at_the_latest_tick() -> None:
    clock = FakeClock()
    m = _metrics(clock, max_points=10)
    for _ in range(64):
        m.record_result(_result(), 0.1)
        clock.advance(1.0)
        m.tick()
    last = m.summary()["timeline"][-1]
    assert (last["t"], last["ok"]) == (64.0, 64)


def test_downsampled_rates_still_sum_to_the_total() -> None:
    clock = FakeClock()
    m = _metrics(clock, max_points=8)
    for _ in range(40):
        m.record_result(_result(), 0.1)
        clock.advance(1.0)
        m.tick()
    rows = m.summary()["timeline"]
    prev = 0.0
    total = 0.0
    for row in rows:
        total += row["ok_per_s"] * (row["t"] - prev)
        prev = row["t"]
    assert total == pytest.approx(rows[-1]["ok"])


def test_snapshot_estimates_the_time_left() -> None:
    clock = FakeClock()
    m = _metrics(clock)
    m.set_total(100)  # 100 items x 2 operations = 200 pairs
    for _ in range(10):
        for _ in range(5):
            m.record_result(_result(), 0.1)
        clock.advance(1.0)
        m.tick()
    snap = m.snapshot()
    assert (snap["done"], snap["total"], snap["per_s"], snap["eta_s"]) == (50, 200, 5.0, 30.0)


def test_other_shards_items_are_not_this_shards_progress() -> None:
    """The total is this shard's share, so another shard's items are not done here."""
    m = _metrics()
    m.set_total(10)
    m.shard_filtered(3)
    assert (m.done, m.total) == (0, 20)


def test_snapshot_counts_images_and_pairs_apart() -> None:
    clock = FakeClock()
    m = _metrics(clock)  # two operations: one image is two pairs
    for _ in range(10):
        m.record_result(_result(), 0.1)
        m.record_result(_result("detect_faces"), 0.1)
        m.item_finished()
        clock.advance(1.0)
        m.tick()
    snap = m.snapshot()
    assert (snap["images_done"], snap["done"], snap["images_per_s"], snap["per_s"]) == (
        10, 20, 1.0, 2.0,
    )  # fmt: skip


def test_each_tick_samples_process_cpu_as_cores() -> None:
    clock = FakeClock()
    used = iter([0.0, 0.5, 1.4])  # start, then one reading per tick
    m = RunMetrics(clock, OPS, wall=lambda: 0.0, cpu=lambda: next(used))
    for _ in range(2):
        clock.advance(1.0)
        m.tick()
    assert [p["cpu_cores"] for p in m.timeline.as_dicts()] == [0.5, 0.9]


def test_each_tick_samples_workers_waiting_for_a_token() -> None:
    clock = FakeClock()
    m = _metrics(clock)
    m.observe_token_wait("detect_labels", 3.0)  # 3 s of waiting in 1 s: 3 workers
    clock.advance(1.0)
    m.tick()
    assert m.timeline.as_dicts()[0]["token_wait_workers"] == 3.0


def test_in_flight_at_the_concurrency_maximum_is_counted_apart_from_the_live_cap() -> None:
    clock = FakeClock()
    m = _metrics(clock)
    m.set_capacity(concurrency=4, workers=8)
    m.set_concurrency_limit(2)  # the controller's cap of the moment
    for _ in range(2):
        m.attempt_started("detect_labels")
    clock.advance(1.0)
    m.tick()
    conc = m.summary()["concurrency"]
    assert (conc["at_limit_share"], conc["at_max_share"]) == (1.0, 0.0)


def test_summary_names_the_run() -> None:
    m = _metrics()
    m.describe({"manifest": "m.jsonl", "concurrency": 8})
    run = m.summary()["run"]
    assert (run["manifest"], run["concurrency"], run["started"]) == (
        "m.jsonl", 8, "1970-01-01T00:16:40Z",
    )  # fmt: skip
