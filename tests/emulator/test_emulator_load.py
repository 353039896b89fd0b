"""Quotas, faults and latency: reproducible by seed, adjustable while running."""

from __future__ import annotations

import time
from typing import Any

import pytest

from batchrek.emulator import EmulatorHandle, EmulatorSettings
from batchrek.emulator.load import LoadModel, TokenBucket
from batchrek.testing import corpus

PHOTO = corpus.photo(320, 240)


def _outcomes(rekognition: Any, count: int, method: str = "detect_labels") -> list[str]:
    found = []
    for _ in range(count):
        try:
            getattr(rekognition, method)(Image={"Bytes": PHOTO})
            found.append("ok")
        except rekognition.exceptions.ClientError as exc:
            found.append(exc.response["Error"]["Code"])
    return found


def test_burst_over_the_quota_is_throttled(emu: EmulatorHandle, rekognition: Any) -> None:
    emu.configure(quota_tps=5)
    outcomes = _outcomes(rekognition, 20)
    assert "ProvisionedThroughputExceededException" in outcomes


def test_paced_stream_under_the_quota_is_not_throttled(
    emu: EmulatorHandle, rekognition: Any
) -> None:
    emu.configure(quota_tps=10)
    _outcomes(rekognition, 10)  # spend the one-second burst first
    outcomes = []
    for _ in range(10):  # then 10 calls at <= 8.3/s: about 1.2 s
        time.sleep(0.12)
        outcomes += _outcomes(rekognition, 1)
    assert outcomes == ["ok"] * 10


def test_override_limits_one_operation_only(emu: EmulatorHandle, rekognition: Any) -> None:
    emu.configure(quota_overrides={"DetectFaces": 0})
    assert _outcomes(rekognition, 1, "detect_labels") + _outcomes(
        rekognition, 1, "detect_faces"
    ) == [
        "ok",
        "ProvisionedThroughputExceededException",
    ]


def test_quota_can_be_lifted_mid_run(emu: EmulatorHandle, rekognition: Any) -> None:
    emu.configure(quota_tps=0)
    _outcomes(rekognition, 1)
    emu.configure(quota_tps=None)
    assert _outcomes(rekognition, 3) == ["ok"] * 3


def test_faults_repeat_at_the_same_seed(emu: EmulatorHandle, rekognition: Any) -> None:
    emu.configure(seed=7, fault_rate=0.3, throttle_rate=0.2)
    first = _outcomes(rekognition, 30)
    emu.reset()  # back to the seed's first draw
    assert _outcomes(rekognition, 30) == first


def test_faults_at_a_seed_mix_outcomes(emu: EmulatorHandle, rekognition: Any) -> None:
    emu.configure(seed=7, fault_rate=0.3, throttle_rate=0.2)
    assert set(_outcomes(rekognition, 30)) == {"ok", "InternalServerError", "ThrottlingException"}


def test_token_bucket_allows_one_second_of_burst() -> None:
    bucket = TokenBucket(rate=5, now=0.0)
    assert [bucket.take(0.0) for _ in range(6)] == [True] * 5 + [False]


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=5, now=0.0)
    for _ in range(5):
        bucket.take(0.0)
    assert bucket.take(0.2)


def test_zero_quota_admits_nothing() -> None:
    bucket = TokenBucket(rate=0, now=0.0)
    assert not bucket.take(100.0)


def test_retune_keeps_tokens_within_the_new_capacity() -> None:
    bucket = TokenBucket(rate=50, now=0.0)
    bucket.retune(2, now=0.0)
    assert bucket.tokens == 2


def _draws(model: LoadModel, count: int) -> list[tuple[float, str | None, bool]]:
    decisions = (model.decide("DetectLabels") for _ in range(count))
    return [(d.delay_s, d.error.code if d.error else None, d.drop) for d in decisions]


def test_same_seed_same_decisions() -> None:
    settings = EmulatorSettings(
        seed=3, fault_rate=0.3, drop_rate=0.2, latency_ms=50, latency_jitter_ms=20
    )
    assert _draws(LoadModel(settings), 50) == _draws(LoadModel(settings), 50)


def test_jittered_latency_keeps_its_mean() -> None:
    model = LoadModel(EmulatorSettings(seed=1, latency_ms=50, latency_jitter_ms=20))
    delays = [model.decide("DetectLabels").delay_s for _ in range(4000)]
    assert sum(delays) / len(delays) == pytest.approx(0.050, rel=0.05)


def test_latency_setting_does_not_shift_fault_draws() -> None:
    plain = LoadModel(EmulatorSettings(seed=5, fault_rate=0.5))
    slow = LoadModel(EmulatorSettings(seed=5, fault_rate=0.5, latency_ms=80, latency_jitter_ms=30))
    assert [d[1:] for d in _draws(plain, 40)] == [d[1:] for d in _draws(slow, 40)]


def test_quota_model_uses_the_injected_clock() -> None:
    now = [0.0]
    model = LoadModel(EmulatorSettings(quota_tps=1), clock=lambda: now[0])
    first, second = model.decide("DetectLabels"), model.decide("DetectLabels")
    now[0] = 1.0
    third = model.decide("DetectLabels")
    assert (first.error, second.error is not None, third.error) == (None, True, None)
