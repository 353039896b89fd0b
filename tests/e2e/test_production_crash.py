"""Crash safety: real runs killed with SIGKILL at random moments, then run to the end.

A SIGKILL (OOM, node loss, the end of a grace period) gives the process no chance to
flush. What must still hold: the final output has exactly one record per
(id, operation), and the images the service analysed more than once (billed again)
are only those whose records the kills lost.

Every image is distinct, so the emulator's per-image accounting is exact; in-run
dedupe is left on (the default) and plays no part.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
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
    wait_until,
)

pytestmark = pytest.mark.slow

IMAGES = 300
KILLS = 5
CONCURRENCY = 8  # what tests.e2e.clirun.run_args passes
RATE = 60  # per second: a kill up to 0.9 s into the calls leaves most of the job undone
SEED = 20261121
OP = "detect_labels"


@dataclass(frozen=True)
class Crashed:
    kills: int
    lost_per_kill: list[int]  # analyses the service did whose records a kill lost
    final_code: int
    final_stderr: str
    final: list[dict[str, Any]]
    expected: frozenset[tuple[str, str]]
    analyses: dict[str, int]  # per image digest, over every run

    @property
    def extra_analyses(self) -> int:
        return sum(self.analyses.values()) - len(self.analyses)


def _calls(emulator: EmulatorHandle) -> int:
    """DetectLabels requests (not the preflight's free probe)."""
    return sum(emulator.stats()["requests"].get("DetectLabels", {}).values())


def _requests_above(emulator: EmulatorHandle, count: int) -> Callable[[], bool]:
    return lambda: _calls(emulator) > count


def _whole_lines(out: Path) -> int:
    return out.read_bytes().count(b"\n") if out.exists() else 0


@pytest.fixture(scope="module")
def crashed(
    emulator: EmulatorHandle, s3: S3Bed, tmp_path_factory: pytest.TempPathFactory
) -> Crashed:
    folder = tmp_path_factory.mktemp("crash")
    manifest = image_manifest(folder, IMAGES, salt=11)
    out = folder / "out.jsonl"
    common = run_args(manifest, out, emulator.endpoint_url, s3.endpoint_url)
    emulator.reset(settings=True)
    emulator.configure(latency_ms=30)
    rng = random.Random(SEED)
    lost: list[int] = []
    unaccounted = 0
    for k in range(KILLS):
        before = _calls(emulator)
        child = Child([*common, "--rate", str(RATE)], log=folder / f"stderr-{k}.txt")
        try:
            # Kill while calls are being made, at a random moment of them.
            wait_until(_requests_above(emulator, before), timeout_s=60)
            time.sleep(rng.uniform(0.1, 0.9))
        finally:
            child.kill()
        # Calls the dead client left in flight still finish (and bill) in the service.
        wait_until(lambda: emulator.stats()["in_flight"] == 0, timeout_s=30)
        # Lines on disk now (a torn last one is not counted: resume redoes it).
        gap = sum(emulator.analyses("DetectLabels").values()) - _whole_lines(out)
        lost.append(gap - unaccounted)
        unaccounted = gap
    final = batchrek(*common, "--rate", "1000", output=out)
    analyses = emulator.analyses("DetectLabels")
    emulator.reset(settings=True)
    return Crashed(
        kills=KILLS,
        lost_per_kill=lost,
        final_code=final.code,
        final_stderr=final.stderr,
        final=final.records,
        expected=frozenset((f"i{n}", OP) for n in range(IMAGES)),
        analyses=analyses,
    )


def test_run_after_the_kills_finishes_cleanly(crashed: Crashed) -> None:
    assert crashed.final_code == 0, crashed.final_stderr


def test_kills_then_a_rerun_leave_exactly_one_record_per_pair(crashed: Crashed) -> None:
    assert exactly_once(crashed.final, crashed.expected)


def test_every_image_was_analysed(crashed: Crashed) -> None:
    assert len(crashed.analyses) == IMAGES


def test_rebilling_is_bounded_by_the_calls_in_flight_at_each_kill(crashed: Crashed) -> None:
    # The writer hands records to the OS whenever it has caught up (here it always
    # has: RATE is far below what the machine can write), so a kill loses only the
    # calls still in flight, never finished ones waiting in a buffer.
    assert crashed.extra_analyses <= crashed.kills * CONCURRENCY, crashed.lost_per_kill
