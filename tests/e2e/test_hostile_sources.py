"""Hostile sources and manifests through the real CLI: special files, endless lines,
garbage manifests, unwritable metadata, S3 manifests naming local files, folder
listings. Each ends as its own record or refusal; nothing hangs, crashes or grows.

Bounds, not timings: every run has a subprocess timeout, so a hang fails the test.
"""

from __future__ import annotations

import os
import signal
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from batchrek.testing import corpus
from tests.conftest import S3Bed
from tests.e2e.clirun import batchrek, read_records, run_args
from tests.e2e.production import Child, distinct_images, wait_until
from tests.e2e.stops import stop_seen

pytestmark = pytest.mark.slow

LONG_LINE = 16 * 1024 * 1024 + 100  # over MAX_LINE_BYTES


@dataclass(frozen=True)
class Runs:
    code: int
    stderr: str
    records: dict[str, dict[str, Any]]
    rerun_code: int
    rerun_stderr: str
    rerun_records: list[dict[str, Any]]


@pytest.fixture(scope="module")
def unix_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("sock") / "s.jpg"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    try:
        yield path
    finally:
        server.close()


@pytest.fixture(scope="module")
def runs(
    emulator: Any, s3: S3Bed, unix_socket: Path, tmp_path_factory: pytest.TempPathFactory
) -> Runs:
    folder = tmp_path_factory.mktemp("hostile-sources")
    (folder / "good.jpg").write_bytes(corpus.photo(200, 150))
    (folder / "after.jpg").write_bytes(corpus.photo(210, 150))
    os.mkfifo(folder / "pipe.jpg")  # nobody ever writes to it
    (folder / "loop-a.jpg").symlink_to(folder / "loop-b.jpg")
    (folder / "loop-b.jpg").symlink_to(folder / "loop-a.jpg")
    deep = '{"a": ' * 300 + "1" + "}" * 300
    manifest = folder / "m.jsonl"
    with manifest.open("w") as fh:
        for name, image in [
            ("good", folder / "good.jpg"),
            ("fifo", folder / "pipe.jpg"),
            ("zero", "/dev/zero"),
            ("urandom", "/dev/urandom"),
            ("proc", "/proc/self/status"),
            ("socket", unix_socket),
            ("loop", folder / "loop-a.jpg"),
        ]:
            fh.write(orjson.dumps({"id": name, "image": str(image)}).decode() + "\n")
        fh.write('{"id": "nul", "image": "/tmp/a\\u0000.jpg"}\n')
        fh.write('{"id": "deep", "image": "' + str(folder / "good.jpg") + '", "m": ' + deep + "}\n")
        fh.write('{"id": "long", "pad": "' + "x" * LONG_LINE + '"}\n')
        fh.write(orjson.dumps({"id": "after", "image": str(folder / "after.jpg")}).decode() + "\n")
    out = folder / "out.jsonl"
    args = run_args(manifest, out, emulator.endpoint_url, s3.endpoint_url)
    emulator.reset(settings=True)
    first = batchrek(*args, output=out, timeout=120)
    rerun = batchrek(*args, output=out, timeout=120)
    records = {}
    for record in first.records:
        key = record["id"] if record["operation"] != "manifest" else record["error"]["message"]
        records[key] = record
    return Runs(first.code, first.stderr, records, rerun.code, rerun.stderr, rerun.records)


def _code_of(runs: Runs, item: str) -> str:
    return str(runs.records[item]["error"]["code"])


def _manifest_error(runs: Runs, line: int) -> dict[str, Any]:
    [record] = [r for r in runs.records.values() if r["id"] == f"manifest-line-{line}"]
    return record


@pytest.mark.parametrize("item", ["fifo", "zero", "urandom", "proc", "socket"])
def test_a_special_file_is_one_precise_record(runs: Runs, item: str) -> None:
    assert (_code_of(runs, item), runs.records[item]["error"]["retryable"]) == (
        "SpecialFile",
        False,
    )


def test_a_symlink_loop_has_its_own_code(runs: Runs) -> None:
    assert _code_of(runs, "loop") == "SymlinkLoop"


def test_a_nul_byte_in_a_path_is_a_manifest_error(runs: Runs) -> None:
    record = _manifest_error(runs, 8)
    assert "NUL" in record["error"]["message"]


def test_metadata_too_deep_to_write_is_one_manifest_error(runs: Runs) -> None:
    assert "cannot be written" in _manifest_error(runs, 9)["error"]["message"]


def test_an_over_long_line_is_one_manifest_error(runs: Runs) -> None:
    assert "longer than" in _manifest_error(runs, 10)["error"]["message"]


def test_reading_goes_on_after_the_over_long_line(runs: Runs) -> None:
    assert runs.records["after"]["status"] == "ok"


def test_the_run_ends_with_failed_pairs_and_no_traceback(runs: Runs) -> None:
    assert (runs.code, "Traceback" in runs.stderr) == (1, False)


def test_a_rerun_redoes_nothing_and_does_not_crash(runs: Runs) -> None:
    assert (runs.rerun_code, "Traceback" in runs.rerun_stderr) == (1, False)
    assert len(runs.rerun_records) == len(runs.records)


# -- a manifest that is not one ------------------------------------------------------


def test_a_garbage_manifest_stops_the_run_with_exit_2(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(b"".join(b"garbage line %d {{{\n" % i for i in range(5000)))
    out = tmp_path / "out.jsonl"
    res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), output=out)
    assert (res.code, "is not a manifest" in res.stderr, res.records) == (2, True, [])


# -- a manifest that came from S3 -----------------------------------------------------


def test_an_s3_manifest_cannot_read_local_files(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    prefix = f"hostile/{uuid.uuid4()}"
    s3.put(s3.bucket_use1, f"{prefix}/a.jpg", corpus.photo(200, 150))
    lines = (
        f"s3://{s3.bucket_use1}/{prefix}/a.jpg\n/etc/hostname\nfile:///etc/passwd\n../../x.jpg\n"
    )
    s3.put(s3.bucket_use1, f"{prefix}/m.txt", lines.encode())
    out = tmp_path / "out.jsonl"
    res = batchrek(
        *run_args(f"s3://{s3.bucket_use1}/{prefix}/m.txt", out, emu.endpoint_url, s3.endpoint_url),
        output=out,
    )
    codes = sorted((r["error"] or {}).get("code", "ok") for r in res.records)
    assert codes == ["ManifestError", "ManifestError", "ManifestError", "ok"]


# -- a folder manifest ----------------------------------------------------------------


def test_a_folder_run_counts_what_it_skipped_and_why(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "a.jpg").write_bytes(corpus.photo(200, 150))
    (root / "b.jfif").write_bytes(corpus.photo(210, 150))
    (root / "notes.txt").write_text("n")
    (outside / "secret.jpg").write_bytes(corpus.photo(220, 150))
    (root / "escape.jpg").symlink_to(outside / "secret.jpg")
    out, metrics = tmp_path / "out.jsonl", tmp_path / "metrics.json"
    res = batchrek(
        *run_args(root, out, emu.endpoint_url, s3.endpoint_url),
        "--metrics-out",
        str(metrics),
        output=out,
    )
    summary = orjson.loads(metrics.read_bytes())
    assert sorted(Path(r["id"]).name for r in res.records) == ["a.jpg", "b.jfif"]
    assert summary["listing_skipped"] == {"not_an_image_extension": 1, "symlink_outside_root": 1}
    assert summary["stop"] is None  # a run that reached the end
    assert "not listed: 2 files" in res.stderr


# -- a manifest nobody writes to, and SIGTERM -------------------------------------------


def test_sigterm_ends_a_run_blocked_on_a_manifest_pipe(tmp_path: Path, emu: Any, s3: S3Bed) -> None:
    """The manifest is a FIFO whose writer never comes: the read blocks in the kernel.
    SIGTERM must still end the run within the grace period."""
    fifo = tmp_path / "manifest.txt"
    os.mkfifo(fifo)
    out = tmp_path / "out.jsonl"
    child = Child(
        [
            *run_args(fifo, out, emu.endpoint_url, s3.endpoint_url),
            "--grace-period-s",
            "2",
            "--log-interval-s",
            "1",
        ],
        log=tmp_path / "stderr.txt",
    )
    try:
        assert wait_until(lambda: "progress" in child.stderr().lower(), timeout_s=60), (
            child.stderr()
        )
        child.send(signal.SIGTERM)
        code = child.wait(30)  # a bound: the grace period is 2 s
    finally:
        if child.running:
            child.kill()
    assert code == 143, child.stderr()
    assert read_records(out) == []


def test_a_file_found_to_be_garbage_midway_stops_after_writing_what_was_billed(
    tmp_path: Path, emu: Any, s3: S3Bed
) -> None:
    """Good lines first, then mostly garbage: the run stops with exit 2 once the share
    rule trips; the calls already made are written, whole, not lost."""
    imgs = distinct_images(tmp_path / "imgs", 300, salt=12)
    manifest = tmp_path / "m.txt"
    lines = [f"{img}\n" for img in imgs] + ["gs://not/a/manifest/line\n"] * 2000
    manifest.write_text("".join(lines))
    out, metrics = tmp_path / "out.jsonl", tmp_path / "metrics.json"
    res = batchrek(
        *run_args(manifest, out, emu.endpoint_url, s3.endpoint_url),
        "--metrics-out",
        str(metrics),
        output=out,
    )
    billed = sum(emu.stats()["requests"].get("DetectLabels", {}).values())  # not the preflight
    ok = [r for r in res.records if r["status"] == "ok"]
    assert (res.code, "is not a manifest" in res.stderr) == (2, True)
    assert len(ok) == billed  # every call made is in the output
    seen = stop_seen(res.stderr, output=out, metrics=metrics)
    assert (seen.summary_block, seen.output_line) == (True, True), res.stderr
    # The summary counts what was written: the images' records and the bad lines'.
    assert (seen.ok, seen.failed, seen.billed) == (len(ok), len(res.records) - len(ok), billed)
    assert "is not a manifest" in seen.last_line
    assert "check the file and --format" in seen.last_line
    assert "rerun with the same -o" in seen.last_line
    assert (seen.stop["kind"], seen.stop["exit_code"]) == ("not_a_manifest", 2)
    assert "is not a manifest" in seen.stop["message"]
