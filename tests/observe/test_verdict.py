"""The verdict: right on recorded runs, or it says it cannot tell.

``scenarios/*.json`` are the ``--metrics-out`` documents of real runs against the
emulator (``scripts/record_verdicts.py`` records them): a quota, a concurrency cap,
``--rate auto`` still ramping with no quota, transcoding, a slow manifest source, a
saturated client CPU, and a run too short to judge. The verdict is recomputed from
each, as ``batchrek report`` would from an old file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchrek.cli import _parser
from batchrek.config import load_settings
from batchrek.observe import tuning_verdict
from batchrek.observe.verdict import Verdict

SCENARIOS = Path(__file__).parent / "scenarios"
EXPECTED = {
    "quota": "quota",
    "concurrency": "concurrency",
    "ramping": "rate",
    "preparation": "image_preparation",
    "source": "manifest_source",
    "cpu": "client_cpu",
    "too_short": "too_short",
}


def _doc(name: str) -> dict[str, Any]:
    return json.loads((SCENARIOS / f"{name}.json").read_text())  # type: ignore[no-any-return]


def _verdict(name: str) -> Verdict:
    return tuning_verdict(_doc(name))


@pytest.mark.parametrize(("name", "limiter"), EXPECTED.items())
def test_each_recorded_run_gets_its_limiter(name: str, limiter: str) -> None:
    assert _verdict(name).limiter == limiter


def _numbers(text: str) -> list[float]:
    return [float(n.replace(",", "")) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", text)]


def _leaves(value: Any) -> Iterator[float]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield float(value)


@pytest.mark.parametrize("name", EXPECTED)
def test_every_number_printed_is_in_the_metrics_document(name: str) -> None:
    doc = _doc(name)
    verdict = tuning_verdict(doc)
    doc["verdict"] = verdict.as_dict()
    known = set(_leaves(doc))
    assert [n for n in _numbers(verdict.explanation) if n not in known] == []


@pytest.mark.parametrize("name", EXPECTED)
def test_every_printed_number_is_kept_under_a_name(name: str) -> None:
    verdict = _verdict(name)
    assert set(_numbers(verdict.explanation)) <= set(verdict.evidence.values())


@pytest.mark.parametrize("name", EXPECTED)
def test_worker_counts_never_exceed_what_exists(name: str) -> None:
    doc = _doc(name)
    evidence = _verdict(name).evidence
    workers = doc["concurrency"]["workers"]
    counted = [evidence[k] for k in ("workers", "token_wait_workers", "preparing_workers")
               if k in evidence]  # fmt: skip
    assert all(n <= workers for n in counted)


@pytest.mark.parametrize("name", EXPECTED)
def test_in_flight_never_exceeds_the_cap(name: str) -> None:
    doc = _doc(name)
    assert _verdict(name).evidence.get("in_flight_mean", 0) <= doc["concurrency"]["max"]


@pytest.mark.parametrize("name", [n for n in EXPECTED if _doc(n)["verdict"]["args"]])
def test_every_suggested_flag_is_accepted_by_the_real_command_line(name: str) -> None:
    args = _verdict(name).args
    parsed = _parser().parse_args(["run", "m.jsonl", "-o", "o.jsonl", *args])
    flags = {k: v for k, v in vars(parsed).items()
             if k not in ("command", "config", "func", "verbose") and v is not None}  # fmt: skip
    assert load_settings(flags, environ={}).manifest == "m.jsonl"


@pytest.mark.parametrize("name", ["quota", "concurrency", "ramping", "preparation", "cpu"])
def test_a_suggestion_has_a_value(name: str) -> None:
    args = _verdict(name).args
    flags, values = args[::2], args[1::2]
    shape = (len(flags) > 0, all(f.startswith("--") for f in flags), len(values) == len(flags))
    assert shape == (True, True, True)


def test_ramping_without_a_quota_is_not_called_the_quota() -> None:
    verdict = _verdict("ramping")
    assert ("not the quota" in verdict.explanation, "Service Quotas" in verdict.suggestion) == (
        True,
        False,
    )


def test_ramping_says_how_long_to_reach_what_the_concurrency_carries() -> None:
    evidence = _verdict("ramping").evidence
    assert evidence["detect_labels.seconds_to_concurrency_rate"] > 0


def test_ramping_suggests_the_rate_the_service_accepted() -> None:
    verdict = _verdict("ramping")
    assert verdict.args == ("--rate", str(int(verdict.evidence["detect_labels.rate_last"])))


def test_the_quota_suggestion_is_no_more_than_the_service_took() -> None:
    doc = _doc("quota")
    verdict = tuning_verdict(doc)
    ceiling = doc["by_operation"]["detect_labels"]["rate_ceiling"]
    assert int(verdict.args[1]) <= ceiling


def test_too_short_says_why() -> None:
    explanation = _verdict("too_short").explanation
    assert re.search(r"lasted [\d.]+ s and sent 20 requests", explanation)


def test_too_short_suggests_no_flag() -> None:
    assert _verdict("too_short").args == ()


def test_a_slow_source_names_no_setting_that_cannot_help() -> None:
    verdict = _verdict("source")
    assert (verdict.args, "no batchrek setting" in verdict.suggestion) == ((), True)


# -- synthetic documents: the order of the checks and the edges ---------------------------


def _idle(**over: Any) -> dict[str, Any]:
    """100 s, 16-slot cap, 20 workers, 20 req/s at 0.25 s: 5 in flight, nothing busy."""
    doc: dict[str, Any] = {
        "run": {"operations": ["detect_labels"], "rate": "auto", "shard_count": 1},
        "elapsed_s": 100.0,
        "requests": 2000,
        "throttled": 0,
        "ok": 2000,
        "items": 2000,
        "service_busy_s": 500.0,
        "cpu_s": 20.0,
        "loop": {"run_s": 20.0, "wait_s": 1.0},
        "concurrency": {"max": 16, "workers": 20, "in_flight_mean": 5.0, "at_max_share": 0.0},
        "token_wait_ms": {"seconds": 0.0},
        "prepare_ms": {"seconds": 40.0},
        "transcodes": {"seconds": 0.0},
        "read_wait_ms": {"seconds": 1.0},
        "by_operation": {"detect_labels": {"requests": 2000, "throttled": 0, "rate": 50.0}},
        "timeline": [{"t": float(t), "rate": {"detect_labels": 50.0}} for t in range(1, 101)],
    }
    doc.update(over)
    return doc


def _at_cap(**over: Any) -> dict[str, Any]:
    """40 req/s x 0.4 s = 16 in flight: the cap, full 95 % of the time."""
    return _idle(
        requests=4000,
        service_busy_s=1600.0,
        concurrency={"max": 16, "workers": 20, "in_flight_mean": 16.0, "at_max_share": 0.95},
        **over,
    )


def test_nothing_saturated_means_no_limiter() -> None:
    assert tuning_verdict(_idle()).limiter == "none"


def test_concurrency_suggestion_doubles_the_rate_when_no_rate_is_set() -> None:
    # 80 req/s x 0.4 s = 32, x 1.25 = 40.
    assert tuning_verdict(_at_cap()).args == ("--concurrency", "40")


def test_concurrency_explanation_shows_littles_law() -> None:
    explanation = tuning_verdict(_at_cap()).explanation
    assert "40 req/s x 0.4 s mean latency = 16 in flight" in explanation


def test_a_fixed_rate_is_a_target_four_times_away_at_most() -> None:
    doc = _at_cap(run={"operations": ["detect_labels"], "rate": "1000", "shard_count": 1})
    # 4 x 40 = 160 req/s x 0.4 s = 64, x 1.25 = 80.
    assert tuning_verdict(doc).args == ("--concurrency", "80")


def test_throttles_win_over_a_full_concurrency_cap() -> None:
    doc = _at_cap(throttled=100)
    doc["by_operation"]["detect_labels"]["throttled"] = 100
    assert tuning_verdict(doc).limiter == "quota"


def test_a_handful_of_throttles_in_a_big_run_is_not_the_quota() -> None:
    assert tuning_verdict(_idle(throttled=1)).limiter == "none"


def test_a_saturated_loop_wins_over_a_full_concurrency_cap() -> None:
    doc = _at_cap(loop={"run_s": 60.0, "wait_s": 35.0})
    assert tuning_verdict(doc).limiter == "client_cpu"


def test_a_loop_waiting_for_a_shared_core_is_called_so() -> None:
    verdict = tuning_verdict(_idle(loop={"run_s": 50.0, "wait_s": 45.0}))
    assert "shared" in verdict.explanation


def test_a_saturated_loop_wins_over_slow_preparation() -> None:
    doc = _idle(prepare_ms={"seconds": 1900.0}, cpu_s=95.0, loop={"run_s": 95.0, "wait_s": 0})
    assert tuning_verdict(doc).limiter == "client_cpu"


def test_a_fixed_rate_holding_the_run_is_the_rate_not_the_quota() -> None:
    doc = _idle(
        run={"operations": ["detect_labels"], "rate": "20", "shard_count": 1},
        token_wait_ms={"seconds": 1500.0},
    )
    assert (tuning_verdict(doc).limiter, tuning_verdict(doc).args) == ("rate", ("--rate", "40"))


def test_waiting_workers_are_clamped_to_the_workers_that_exist() -> None:
    doc = _idle(token_wait_ms={"seconds": 99_999.0})
    assert tuning_verdict(doc).evidence["token_wait_workers"] == 20


def test_operations_with_different_rates_get_a_rates_table() -> None:
    ops = {
        "detect_labels": {"requests": 2000, "throttled": 50, "rate": 48.0},
        "detect_text": {"requests": 1000, "throttled": 20, "rate": 19.0},
    }
    rows = [{"t": float(t), "rate": {"detect_labels": 48.0, "detect_text": 19.0}}
            for t in range(1, 101)]  # fmt: skip
    verdict = tuning_verdict(_idle(throttled=70, by_operation=ops, timeline=rows))
    assert verdict.setting == "[rates]\ndetect_labels = 48\ndetect_text = 19"


def test_a_rates_table_loads_as_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[rates]\ndetect_labels = 48\ndetect_text = 19\n")
    settings = load_settings({"manifest": "m", "output": "o"}, config_file=str(config), environ={})
    assert dict(settings.rates) == {"detect_labels": 48, "detect_text": 19}


def test_a_shards_rate_is_multiplied_back_to_the_accounts() -> None:
    doc = _idle(
        throttled=50,
        run={"operations": ["detect_labels"], "rate": "auto", "shard_count": 4},
    )
    doc["by_operation"]["detect_labels"].update(throttled=50, rate=12.5)
    assert tuning_verdict(doc).args == ("--rate", "50")


def test_an_older_document_without_capacity_skips_the_worker_checks() -> None:
    doc = _idle(prepare_ms={"seconds": 5000.0})
    del doc["concurrency"]
    assert tuning_verdict(doc).limiter == "none"
