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
    child = Child([*common, "--rate", "20"], log=folder / "stderr.txt")
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
    return Stopped(code=code, stderr=child.stderr(), written=written, rerun=rerun)


def test_a_stopped_run_says_so_in_its_summary(stopped: Stopped) -> None:
    assert stopped.code == 143
    assert "batchrek summary (stopped before the end of the manifest)" in stopped.stderr


def test_a_stopped_run_says_how_many_pairs_are_left(stopped: Stopped) -> None:
    found = LEFT.search(stopped.stderr)
    assert found is not None, stopped.stderr
    assert int(found[1]) == IMAGES - stopped.written


def test_the_finished_rerun_does_not_say_stopped(stopped: Stopped) -> None:
    assert stopped.rerun.code == 0, stopped.rerun.stderr
    assert "stopped" not in stopped.rerun.stderr
