"""Graceful shutdown of the real CLI: what a pod gets when Kubernetes stops it.

The first SIGTERM/SIGINT stops reading the manifest and lets in-flight calls finish;
a second one cancels them at once. Either way the output stays whole lines and a
rerun with the same ``-o`` ends with exactly one record per (id, operation).

Each scenario runs once per module (a fixture) and every test asserts one thing
about it.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from batchrek.emulator import EmulatorHandle
from tests.conftest import S3Bed
from tests.e2e.clirun import batchrek, run_args
from tests.e2e.production import (
    Child,
    exactly_once,
    image_manifest,
    parse_lines,
    wait_until,
)

pytestmark = pytest.mark.slow

IMAGES = 200
OP = "detect_labels"
EXIT_CODE = {signal.SIGTERM: 143, signal.SIGINT: 130}


@dataclass(frozen=True)
class Stopped:
    signum: signal.Signals
    code: int | None
    raw: bytes  # the output as the stopped run left it
    expected: frozenset[tuple[str, str]]
    rerun_code: int
    rerun_stderr: str
    final: list[dict[str, Any]]
    analyses: dict[str, int]  # per image digest, over both runs


def _has_records(out: Path) -> bool:
    return out.exists() and out.stat().st_size > 0


@pytest.fixture(scope="module", params=[signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def stopped(
    request: pytest.FixtureRequest,
    emulator: EmulatorHandle,
    s3: S3Bed,
    tmp_path_factory: pytest.TempPathFactory,
) -> Stopped:
    signum: signal.Signals = request.param
    folder = tmp_path_factory.mktemp(f"stop-{signum.name}")
    manifest = image_manifest(folder, IMAGES, salt=signum.value)
    out = folder / "out.jsonl"
    common = run_args(manifest, out, emulator.endpoint_url, s3.endpoint_url)
    emulator.reset(settings=True)
    emulator.configure(latency_ms=30)
    # 200 calls at 40/s: several seconds of work, so the signal lands mid-run.
    child = Child([*common, "--rate", "40"], log=folder / "stderr.txt")
    try:
        assert wait_until(lambda: _has_records(out), timeout_s=60), child.stderr()
        child.send(signum)
        code = child.wait(60)
    finally:
        if child.running:
            child.kill()
    raw = out.read_bytes()
    emulator.configure(latency_ms=0)
    rerun = batchrek(*common, "--rate", "1000", output=out)
    analyses = emulator.analyses("DetectLabels")
    emulator.reset(settings=True)
    return Stopped(
        signum=signum,
        code=code,
        raw=raw,
        expected=frozenset((f"i{n}", OP) for n in range(IMAGES)),
        rerun_code=rerun.code,
        rerun_stderr=rerun.stderr,
        final=rerun.records,
        analyses=analyses,
    )


def test_signal_exits_with_its_conventional_code(stopped: Stopped) -> None:
    assert stopped.code == EXIT_CODE[stopped.signum]


def test_signal_stops_the_run_before_the_manifest_ends(stopped: Stopped) -> None:
    assert 0 < len(parse_lines(stopped.raw)) < IMAGES


def test_stopped_output_ends_on_a_whole_line(stopped: Stopped) -> None:
    assert stopped.raw.endswith(b"\n")


def test_every_record_of_the_stopped_run_is_a_valid_ok_record(stopped: Stopped) -> None:
    records = parse_lines(stopped.raw)
    assert all(
        (r["id"], r["operation"]) in stopped.expected
        and r["status"] == "ok"
        and isinstance(r["response"], dict)
        for r in records
    )


def test_rerun_completes_the_job_with_one_record_per_pair(stopped: Stopped) -> None:
    assert stopped.rerun_code == 0, stopped.rerun_stderr
    assert exactly_once(stopped.final, stopped.expected)


def test_graceful_stop_bills_no_image_twice(stopped: Stopped) -> None:
    # In-flight calls finished and were written before exit: the rerun redid none.
    assert sorted(stopped.analyses.values()) == [1] * IMAGES


# -- a second signal -------------------------------------------------------------------


@dataclass(frozen=True)
class Cut:
    saw_first_stop: bool
    code: int | None  # None: still running long after the second signal
    stderr: str
    raw: bytes
    expected: frozenset[tuple[str, str]]
    rerun_code: int
    rerun_stderr: str
    final: list[dict[str, Any]]


@pytest.fixture(scope="module")
def cut_short(emulator: EmulatorHandle, s3: S3Bed, tmp_path_factory: pytest.TempPathFactory) -> Cut:
    folder = tmp_path_factory.mktemp("second-signal")
    manifest = image_manifest(folder, IMAGES, salt=7)
    out = folder / "out.jsonl"
    common = run_args(manifest, out, emulator.endpoint_url, s3.endpoint_url)
    emulator.reset(settings=True)
    emulator.configure(latency_ms=30)
    # A long grace period and calls that keep being throttled (retried with back-off
    # for minutes): after the first signal the run can only end early if the second
    # one cancels the in-flight calls.
    child = Child(
        [*common, "--rate", "40", "--max-attempts", "50", "--grace-period-s", "600"],
        log=folder / "stderr.txt",
    )
    try:
        assert wait_until(lambda: _has_records(out), timeout_s=60), child.stderr()
        emulator.configure(throttle_rate=1.0)
        assert wait_until(
            lambda: (
                emulator.stats()["requests"].get("DetectLabels", {}).get("ThrottlingException", 0)
                >= 8
            ),
            timeout_s=30,
        )
        child.send(signal.SIGTERM)
        saw_first = wait_until(lambda: "stopping; finishing" in child.stderr(), timeout_s=30)
        child.send(signal.SIGTERM)
        # Far below both the grace period and the back-off the calls are stuck in.
        code = child.wait(20)
    finally:
        if child.running:
            child.kill()
    raw = out.read_bytes()
    emulator.reset(settings=True)
    rerun = batchrek(*common, "--rate", "1000", output=out)
    return Cut(
        saw_first_stop=saw_first,
        code=code,
        stderr=child.stderr(),
        raw=raw,
        expected=frozenset((f"i{n}", OP) for n in range(IMAGES)),
        rerun_code=rerun.code,
        rerun_stderr=rerun.stderr,
        final=rerun.records,
    )


def test_second_signal_exits_143_without_waiting_for_in_flight_calls(cut_short: Cut) -> None:
    assert (cut_short.saw_first_stop, cut_short.code) == (True, 143)


def test_second_signal_says_the_run_stopped_and_how_to_finish(cut_short: Cut) -> None:
    assert (
        "stopped at once by a second SIGTERM; the pairs left are not counted; "
        "rerun with the same -o to finish"
    ) in cut_short.stderr


def test_second_signal_leaves_whole_valid_records(cut_short: Cut) -> None:
    records = parse_lines(cut_short.raw)
    assert cut_short.raw.endswith(b"\n")
    assert all((r["id"], r["operation"]) in cut_short.expected for r in records)


def test_rerun_after_second_signal_completes_exactly(cut_short: Cut) -> None:
    assert cut_short.rerun_code == 0, cut_short.rerun_stderr
    assert exactly_once(cut_short.final, cut_short.expected)
