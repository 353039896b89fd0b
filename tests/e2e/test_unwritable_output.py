"""An output that cannot be written is found before anything is billed; a write that
fails during the run stops billing at once; nothing billed is lost.

- Before billing: a path under a file, a folder, a metrics file whose folder cannot
  be made: exit 2, one line, no traceback, no request reached the service. (Read-only
  mounts and permissions take the same path, ``OSError`` from the probe; the suite
  runs as root, where neither can be staged, so ``tests/output/test_guard.py``
  injects them.)
- During the run: the child runs under ``RLIMIT_FSIZE`` (the file-size limit a full
  disk looks like to a writer: EFBIG instead of ENOSPC, same path): exit 74, the
  summary says it stopped, the file ends in whole records, billing stopped within
  the calls in flight, and a rerun finishes with exactly one record per pair.
- At the end: a ``--metrics-out`` folder that vanished during the run: the summary is
  still printed, the metrics JSON goes to stdout, exit 74.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from batchrek.emulator import EmulatorHandle
from tests.conftest import S3Bed
from tests.e2e.clirun import ROOT, CliResult, batchrek, run_args
from tests.e2e.production import exactly_once, image_manifest, parse_lines, wait_until
from tests.e2e.stops import StopSeen, stop_seen

pytestmark = pytest.mark.slow

OP = "detect_labels"
CONCURRENCY = 8  # what tests.e2e.clirun.run_args passes
RESULTS_BUFFER = (CONCURRENCY + 4) * 4  # run.pipeline: the results stream's size
FSIZE_LIMIT = 100_000  # bytes: above the 64 KiB start-up probe, ~120 records


def _refused(res: CliResult, emu: EmulatorHandle, *, says: str) -> None:
    assert res.code == 2, res.stderr
    assert says in res.stderr
    assert "Traceback" not in res.stderr
    assert emu.stats()["total_requests"] == 0


def test_output_under_a_file_is_refused_before_billing(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    manifest = image_manifest(tmp_path, 2, salt=51)
    (tmp_path / "notes.txt").write_text("x")
    out = tmp_path / "notes.txt" / "out.jsonl"
    res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url))
    _refused(res, emu, says="a part of the path is a file, not a folder")


def test_output_that_is_a_folder_is_refused_before_billing(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    manifest = image_manifest(tmp_path, 2, salt=52)
    res = batchrek(*run_args(manifest, tmp_path, emu.endpoint_url, s3.endpoint_url))
    _refused(res, emu, says="Is a directory")


@pytest.mark.parametrize("flag", ["--metrics-out", "--metrics-textfile"])
def test_a_metrics_path_that_cannot_be_made_is_refused_before_billing(
    flag: str, tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    manifest = image_manifest(tmp_path, 2, salt=53)
    (tmp_path / "notes.txt").write_text("x")
    out = tmp_path / "out.jsonl"
    res = batchrek(
        *run_args(manifest, out, emu.endpoint_url, s3.endpoint_url),
        flag,
        str(tmp_path / "notes.txt" / "metrics" / "m.json"),
    )
    _refused(res, emu, says=f"{flag} ")
    assert not out.exists()


def test_an_output_on_a_full_disk_is_refused_before_billing(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    manifest = image_manifest(tmp_path, 2, salt=54)
    out = tmp_path / "out.jsonl"
    res = _run_limited([*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url)], 1000)
    _refused(res, emu, says="File too large")


# -- a write that fails during the run ---------------------------------------------------


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:  # in the child, before exec; Python ignores SIGXFSZ: EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _run_limited(args: list[str], limit: int) -> CliResult:
    proc = subprocess.run(
        [sys.executable, "-m", "batchrek", *args],
        capture_output=True,
        text=True,
        env={**_env(), "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=120,
        cwd=ROOT,
        preexec_fn=_limit_file_size(limit),
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr, [])


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@dataclass(frozen=True)
class DiskFull:
    images: int
    code: int
    stderr: str
    raw: bytes  # the output as the failed run left it
    seen: StopSeen  # its summary, last line and metrics
    billed_by_failed_run: int
    rerun_code: int
    rerun_stderr: str
    final: list[dict[str, Any]]
    analyses: dict[str, int]  # per image digest, over both runs


@pytest.fixture(scope="module")
def disk_full(
    emulator: EmulatorHandle, s3: S3Bed, tmp_path_factory: pytest.TempPathFactory
) -> DiskFull:
    folder = tmp_path_factory.mktemp("diskfull")
    images = 300
    manifest = image_manifest(folder, images, salt=55)
    out = folder / "out.jsonl"
    metrics = folder / "metrics.json"
    common = run_args(manifest, out, emulator.endpoint_url, s3.endpoint_url)
    emulator.reset(settings=True)
    failed = _run_limited([*common, "--rate", "1000", "--metrics-out", str(metrics)], FSIZE_LIMIT)
    seen = stop_seen(failed.stderr, output=out, metrics=metrics)
    billed = sum(emulator.analyses("DetectLabels").values())
    raw = out.read_bytes()
    rerun = batchrek(*common, "--rate", "1000", output=out)
    analyses = emulator.analyses("DetectLabels")
    emulator.reset(settings=True)
    return DiskFull(
        images=images,
        code=failed.code,
        stderr=failed.stderr,
        raw=raw,
        seen=seen,
        billed_by_failed_run=billed,
        rerun_code=rerun.code,
        rerun_stderr=rerun.stderr,
        final=rerun.records,
        analyses=analyses,
    )


def test_a_failed_write_exits_74_with_one_clear_line(disk_full: DiskFull) -> None:
    assert disk_full.code == 74, disk_full.stderr
    assert "cannot write the output" in disk_full.stderr
    assert "rerun with the same -o to finish" in disk_full.stderr
    assert "Traceback" not in disk_full.stderr


def test_a_failed_write_ends_with_the_summary_and_stop_in_the_metrics(
    disk_full: DiskFull,
) -> None:
    seen = disk_full.seen
    written = disk_full.raw.count(b"\n")
    assert (seen.summary_block, seen.output_line) == (True, True), disk_full.stderr
    # ok counts the results the calls gave (a few never written); billed, the calls
    # answered, misses those abandoned in flight when billing stopped.
    assert seen.failed == 0
    assert written <= seen.ok <= seen.billed <= disk_full.billed_by_failed_run
    assert "free space or fix the output's permissions" in seen.last_line
    assert (seen.stop["kind"], seen.stop["exit_code"]) == ("output_failed", 74)
    assert "File too large" in seen.stop["message"]


def test_a_failed_write_leaves_whole_records_within_the_limit(disk_full: DiskFull) -> None:
    records = parse_lines(disk_full.raw)  # raises on a partial line
    assert 0 < len(records) < disk_full.images
    assert len(disk_full.raw) <= FSIZE_LIMIT


def test_a_failed_write_stops_billing_within_the_calls_in_flight(disk_full: DiskFull) -> None:
    written = disk_full.raw.count(b"\n")
    # Billed but not written: the calls in flight, the results queued for the writer
    # and the batch the disk refused; nothing started after the failure.
    assert disk_full.billed_by_failed_run - written <= CONCURRENCY + RESULTS_BUFFER


def test_a_failed_write_says_the_run_stopped(disk_full: DiskFull) -> None:
    assert "stopped before the end of the manifest" in disk_full.stderr
    assert "pairs left (estimated" in disk_full.stderr


def test_the_rerun_after_a_failed_write_finishes_exactly_once(disk_full: DiskFull) -> None:
    assert disk_full.rerun_code == 0, disk_full.rerun_stderr
    assert exactly_once(disk_full.final, {(f"i{n}", OP) for n in range(disk_full.images)})


def test_records_written_before_the_failure_stay_in_the_final_output(
    disk_full: DiskFull,
) -> None:
    before = disk_full.raw.splitlines()
    final = {orjson.dumps(r) for r in disk_full.final}
    assert all(orjson.dumps(orjson.loads(line)) in final for line in before)


def test_every_image_was_analysed_and_only_unwritten_ones_twice(disk_full: DiskFull) -> None:
    twice = sum(n - 1 for n in disk_full.analyses.values())
    written = disk_full.raw.count(b"\n")
    assert len(disk_full.analyses) == disk_full.images
    assert twice == disk_full.billed_by_failed_run - written


# -- a metrics file that cannot be written at the end --------------------------------------


def test_metrics_that_cannot_be_written_at_the_end_go_to_stdout(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    manifest = image_manifest(tmp_path, 60, salt=56)
    out = tmp_path / "out.jsonl"
    metrics_dir = tmp_path / "metrics"
    args = [
        *run_args(manifest, out, emu.endpoint_url, s3.endpoint_url),
        "--rate",
        "30",
        "--metrics-out",
        str(metrics_dir / "m.json"),
    ]
    with (tmp_path / "stdout").open("wb") as stdout, (tmp_path / "stderr").open("wb") as err:
        child = subprocess.Popen(
            [sys.executable, "-m", "batchrek", *args],
            stdout=stdout,
            stderr=err,
            env=_env(),
            cwd=ROOT,
        )
        try:
            assert wait_until(lambda: out.exists() and out.stat().st_size > 0, timeout_s=60)
            shutil.rmtree(metrics_dir)  # the folder checked at the start is gone ...
            metrics_dir.write_text("now a file")  # ... and cannot be made again
            code = child.wait(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
    stderr = (tmp_path / "stderr").read_text()
    summary = orjson.loads((tmp_path / "stdout").read_bytes())
    assert (code, "batchrek summary" in stderr, "cannot write the metrics" in stderr) == (
        74,
        True,
        True,
    )
    assert summary["ok"] == 60
