"""tuning_verdict: each limiter from synthetic totals, and the order of the checks."""

from __future__ import annotations

from dataclasses import replace

from batchrek.observe.verdict import VerdictInputs, tuning_verdict

# 100 s, 16 workers, 20 req/s at 0.25 s: 5 in flight, nothing saturated.
IDLE = VerdictInputs(
    elapsed_s=100.0,
    requests=2000,
    throttled=0,
    ok=2000,
    service_busy_s=500.0,
    workers=16,
    prepared=2000,
    prepare_s=40.0,
    cpu_s=20.0,
)


def test_nothing_saturated_means_no_limiter() -> None:
    assert tuning_verdict(IDLE).limiter == "none"


def test_an_empty_run_has_no_limiter() -> None:
    empty = replace(IDLE, requests=0, ok=0, prepared=0, service_busy_s=0.0, prepare_s=0.0)
    assert tuning_verdict(empty).limiter == "none"


def test_throttles_mean_the_quota() -> None:
    assert tuning_verdict(replace(IDLE, throttled=100)).limiter == "quota"


def test_the_quota_suggestion_names_a_rate_below_the_throttling_point() -> None:
    verdict = tuning_verdict(replace(IDLE, throttled=100))
    assert "--rate 20" in verdict.flag


def test_a_handful_of_throttles_in_a_big_run_is_not_the_quota() -> None:
    assert tuning_verdict(replace(IDLE, throttled=1)).limiter == "none"


def test_a_rate_controller_at_its_ceiling_means_the_quota() -> None:
    inputs = replace(IDLE, rate_ceiling_tps=20.0, at_ceiling_share=0.9)
    assert tuning_verdict(inputs).limiter == "quota"


def test_workers_waiting_for_rate_tokens_means_the_quota() -> None:
    assert tuning_verdict(replace(IDLE, token_wait_s=1200.0)).limiter == "quota"


def test_in_flight_at_the_cap_means_concurrency() -> None:
    # 40 req/s x 0.4 s = 16 in flight = the cap.
    inputs = replace(IDLE, requests=4000, ok=4000, service_busy_s=1600.0, at_cap_share=0.95)
    assert tuning_verdict(inputs).limiter == "concurrency"


def test_concurrency_suggestion_reaches_the_rate_ceiling() -> None:
    # 40 req/s x 0.4 s = 16; the ceiling of 100 req/s needs 100 x 0.4 = 40, x 1.25 = 50.
    inputs = replace(
        IDLE,
        requests=4000,
        ok=4000,
        service_busy_s=1600.0,
        at_cap_share=0.95,
        rate_ceiling_tps=100.0,
    )
    assert tuning_verdict(inputs).flag == "--concurrency 50"


def test_concurrency_explanation_shows_littles_law() -> None:
    inputs = replace(IDLE, requests=4000, ok=4000, service_busy_s=1600.0, at_cap_share=0.95)
    assert (
        "40.0 req/s x 0.400 s mean latency = 16.0 in flight" in tuning_verdict(inputs).explanation
    )


def test_slow_preparation_means_image_preparation() -> None:
    # 20 images/s x 0.6 s = 12 of 16 workers preparing.
    assert tuning_verdict(replace(IDLE, prepare_s=1200.0)).limiter == "image_preparation"


def test_waiting_for_the_manifest_means_manifest_source() -> None:
    # 800 s of waiting over 100 s = 8 of 16 workers idle.
    assert tuning_verdict(replace(IDLE, read_wait_s=800.0)).limiter == "manifest_source"


def test_one_busy_core_means_client_cpu() -> None:
    assert tuning_verdict(replace(IDLE, cpu_s=97.0)).limiter == "client_cpu"


def test_throttles_win_over_a_full_concurrency_cap() -> None:
    inputs = replace(IDLE, throttled=100, at_cap_share=1.0)
    assert tuning_verdict(inputs).limiter == "quota"


def test_a_saturated_cpu_wins_over_a_full_concurrency_cap() -> None:
    inputs = replace(IDLE, cpu_s=99.0, at_cap_share=1.0)
    assert tuning_verdict(inputs).limiter == "client_cpu"


def test_unknown_worker_count_skips_the_worker_based_checks() -> None:
    inputs = replace(IDLE, workers=None, prepare_s=5000.0, read_wait_s=5000.0)
    assert tuning_verdict(inputs).limiter == "none"
