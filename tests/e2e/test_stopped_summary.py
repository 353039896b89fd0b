"""A stopped run's summary does not read like a finished one: it says it stopped, how
many pairs are left (estimated from the manifest's line count) and that a rerun with
the same ``-o`` finishes; the finished rerun says none of it."""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass

import pytest

from batchrek.emulator import EmulatorHandle
from tests.conftest import S3Bed
from tests.e2e.clirun import CliResult, batchrek, run_args
from tests.e2e.production import Child, image_manifest, wait_until
from tests.e2e.stops import StopSeen, stop_seen

pytestmark = pytest.mark.slow

IMAGES = 150
LEFT = re.compile(
    r"stopped: (\d+) pairs left \(estimated from the manifest's line count\); "
    r"rerun with the same -o to finish"
)


@dataclass(frozen=True)
class Stopped:
    code: int | None
    stderr: str
    written: int  # records in the output after the stop
    seen: StopSeen  # its summary, last line and metrics
    rerun: CliResult


@pytest.fixture(scope="module")
def stopped(
    emulator: EmulatorHandle, s3: S3Bed, tmp_path_factory: pytest.TempPathFactory
) -> Stopped:
    folder = tmp_path_factory.mktemp("stopped")
    manifest = image_manifest(folder, IMAGES, salt=71)
    out = folder / "out.jsonl"
    common = run_args(manifest, out, emulator.endpoint_url, s3.endpoint_url)
    emulator.reset(settings=True)
    metrics = folder / "metrics.json"
    child = Child(
        [*common, "--rate", "20", "--metrics-out", str(metrics)], log=folder / "stderr.txt"
    )
    try:
        assert wait_until(lambda: out.exists() and out.stat().st_size > 0, timeout_s=60)
        child.send(signal.SIGTERM)
        code = child.wait(60)
    finally:
        if child.running:
            child.kill()
    written = out.read_bytes().count(b"\n")
    rerun = batchrek(*common, "--rate", "1000", output=out)
    emulator.reset(settings=True)
    seen = stop_seen(child.stderr(), output=out, metrics=metrics)
    return Stopped(code=code, stderr=child.stderr(), written=written, seen=seen, rerun=rerun)


def test_a_stopped_run_says_so_in_its_summary(stopped: Stopped) -> None:
    assert stopped.code == 143
    assert "batchrek summary (stopped before the end of the manifest)" in stopped.stderr


def test_a_stopped_run_says_how_many_pairs_are_left(stopped: Stopped) -> None:
    found = LEFT.search(stopped.stderr)
    assert found is not None, stopped.stderr
    assert int(found[1]) == IMAGES - stopped.written


def test_the_finished_rerun_does_not_say_stopped(stopped: Stopped) -> None:
    assert stopped.rerun.code == 0, stopped.rerun.stderr
    assert "stopped before the end" not in stopped.rerun.stderr
    assert "\nstopped: " not in stopped.rerun.stderr


def test_a_signal_stop_ends_with_the_summary_and_stop_in_the_metrics(stopped: Stopped) -> None:
    seen = stopped.seen
    assert (seen.output_line, seen.ok, seen.failed, seen.billed) == (
        True,
        stopped.written,
        0,
        stopped.written,
    )
    assert seen.last_line == "batchrek: stopped by SIGTERM; rerun with the same -o to finish"
    assert (seen.stop["kind"], seen.stop["exit_code"]) == ("signal", 143)
    assert seen.metrics["stopped"]["reason"] == "signal"
