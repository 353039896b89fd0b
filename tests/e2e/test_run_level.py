"""Failures that make the whole run pointless, through the CLI: checked before the
first billed call where they can be, and during the run they stop it (exit 2, one
line saying what to fix) without recording the pairs as done, so the rerun after
the fix does exactly the missing work."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from batchrek.emulator import EmulatorHandle
from batchrek.emulator.projects import version_arn
from tests.conftest import S3Bed
from tests.e2e.clirun import ROOT, batchrek, read_records, run_args
from tests.e2e.production import Child, exactly_once, image_manifest, wait_until
from tests.e2e.stops import StopSeen, stop_seen

pytestmark = pytest.mark.slow

MODEL = version_arn("shop", "v1")


def _sent(emu: EmulatorHandle, api: str) -> int:
    return sum(emu.stats()["requests"].get(api, {}).values())


def _last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def _config(folder: Path, text: str) -> Path:
    path = folder / "batchrek.toml"
    path.write_text(text)
    return path


# -- before the first billed call -----------------------------------------------------


def test_a_missing_collection_exits_2_naming_it_before_any_call(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    manifest = image_manifest(tmp_path, 3, salt=41)
    out = tmp_path / "out.jsonl"
    config = _config(tmp_path, '[params.index_faces]\nCollectionId = "nobody-made-me"\n')
    args = run_args(manifest, out, emu.endpoint_url, s3.endpoint_url)
    res = batchrek(*args, "--operation", "index_faces", "--config", str(config), output=out)
    assert (res.code, _sent(emu, "IndexFaces"), res.records) == (2, 0, []), res.stderr
    assert "collection 'nobody-made-me' does not exist" in _last_line(res.stderr)
    assert "create-collection --collection-id nobody-made-me" in _last_line(res.stderr)


@pytest.fixture
def custom_labels(tmp_path: Path, emu: EmulatorHandle, s3: S3Bed) -> list[str]:
    manifest = image_manifest(tmp_path, 3, salt=42)
    config = _config(tmp_path, f'[params.detect_custom_labels]\nProjectVersionArn = "{MODEL}"\n')
    args = run_args(manifest, tmp_path / "out.jsonl", emu.endpoint_url, s3.endpoint_url)
    return [*args, "--operation", "detect_custom_labels", "--config", str(config)]


def test_a_model_that_is_not_running_exits_2_before_any_call(
    emu: EmulatorHandle, custom_labels: list[str]
) -> None:
    emu.configure(project_versions={MODEL: "STOPPED"})
    res = batchrek(*custom_labels)
    assert (res.code, _sent(emu, "DetectCustomLabels")) == (2, 0), res.stderr
    assert "is not running" in _last_line(res.stderr)
    assert "start-project-version" in _last_line(res.stderr)


def test_once_the_model_runs_the_rerun_does_the_work(
    emu: EmulatorHandle, custom_labels: list[str]
) -> None:
    emu.configure(project_versions={MODEL: "STOPPED"})
    batchrek(*custom_labels)
    emu.configure(project_versions={MODEL: "RUNNING"})
    res = batchrek(*custom_labels)
    assert (res.code, _sent(emu, "DetectCustomLabels")) == (0, 3), res.stderr


def test_an_endpoint_that_never_answers_exits_2_naming_it(tmp_path: Path, s3: S3Bed) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    manifest = image_manifest(tmp_path, 3, salt=43)
    out = tmp_path / "out.jsonl"
    res = batchrek(
        *run_args(manifest, out, dead, s3.endpoint_url),
        env={"BATCHREK_PREFLIGHT_TIMEOUT_S": "1"},
        output=out,
    )
    assert (res.code, res.records) == (2, []), res.stderr
    assert f"cannot reach the Rekognition endpoint {dead}" in _last_line(res.stderr)


def test_no_credentials_at_all_exits_2_saying_so(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    manifest = image_manifest(tmp_path, 3, salt=44)
    out = tmp_path / "out.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        PYTHONPATH=str(ROOT),
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    args = run_args(manifest, out, emu.endpoint_url, s3.endpoint_url)
    proc = subprocess.run(
        [sys.executable, "-m", "batchrek", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert (proc.returncode, read_records(out)) == (2, []), proc.stderr
    assert _last_line(proc.stderr).startswith("batchrek: error: no AWS credentials found")


# -- during the run -------------------------------------------------------------------

IMAGES = 60


def _stopped_mid_run(
    tmp_path: Path,
    emu: EmulatorHandle,
    s3: S3Bed,
    break_it: Any,
    *,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Start a paced run; once some records are written, ``break_it()``; collect how
    the run ended and what it wrote."""
    manifest = image_manifest(tmp_path, IMAGES, salt=45)
    out, metrics = tmp_path / "out.jsonl", tmp_path / "metrics.json"
    args = [*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), *extra]
    child = Child(
        [*args, "--rate", "20", "--metrics-out", str(metrics)], log=tmp_path / "stderr.txt"
    )
    try:
        wait_until(lambda: len(read_records(out)) >= 10, timeout_s=60)
        break_it()
        code = child.wait(60)
    finally:
        if child.running:
            child.kill()
    stderr = child.stderr()
    return {
        "code": code,
        "stderr": stderr,
        "records": read_records(out),
        "args": args,
        "seen": stop_seen(stderr, output=out, metrics=metrics),
    }


def _ends_like_every_stop(ended: dict[str, Any]) -> None:
    """The summary of a run-level stop counts what was written; its last line and the
    metrics' ``stop`` say why and that the rerun does the pairs it stopped."""
    seen: StopSeen = ended["seen"]
    records = ended["records"]
    ok = sum(r["status"] == "ok" for r in records)
    assert (seen.summary_block, seen.output_line) == (True, True), ended["stderr"]
    assert (seen.ok, seen.failed, seen.billed) == (ok, len(records) - ok, ok)
    assert "rerun with the same -o" in seen.last_line
    assert (seen.stop["kind"], seen.stop["exit_code"]) == ("run_level", 2)
    assert seen.stop["message"] in seen.last_line


def _no_permanent_record_of(records: list[dict[str, Any]], code: str) -> bool:
    return not [
        r
        for r in records
        if r["status"] == "error" and r["error"]["code"] == code and not r["error"]["retryable"]
    ]


def test_access_denied_mid_run_stops_it_and_the_rerun_after_the_fix_finishes(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    ended = _stopped_mid_run(
        tmp_path, emu, s3, lambda: emu.configure(denied_operations=["DetectLabels"])
    )
    assert ended["code"] == 2, ended["stderr"]
    assert "grant the role rekognition:DetectLabels" in _last_line(ended["stderr"])
    assert _no_permanent_record_of(ended["records"], "AccessDeniedException")
    _ends_like_every_stop(ended)
    emu.configure(denied_operations=[])
    out = tmp_path / "out.jsonl"
    rerun = batchrek(*ended["args"], output=out)
    assert rerun.code == 0, rerun.stderr
    assert exactly_once(rerun.records, {(f"i{n}", "detect_labels") for n in range(IMAGES)})
    assert sorted(emu.analyses("DetectLabels").values()) == [1] * IMAGES


def test_credentials_that_expire_and_cannot_be_refreshed_stop_the_run_with_exit_2(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    """Static keys (the test bed's environment) whose session the service calls
    expired: the forced refresh has nothing to renew, so the run stops and says to
    renew them, rather than recording every image as an error."""
    try:
        ended = _stopped_mid_run(tmp_path, emu, s3, lambda: emu.configure(expired_keys=["testing"]))
    finally:
        emu.configure(expired_keys=[])
    assert ended["code"] == 2, ended["stderr"]
    last = _last_line(ended["stderr"])
    assert "the session credentials expired and cannot be refreshed" in last
    assert "renew them" in last
    assert _no_permanent_record_of(ended["records"], "ExpiredTokenException")
    assert {r["status"] for r in ended["records"]} == {"ok"}
    _ends_like_every_stop(ended)


def test_credentials_refused_mid_run_stop_it_with_exit_2(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    ended = _stopped_mid_run(tmp_path, emu, s3, lambda: emu.configure(access_keys=["SOMEONE-ELSE"]))
    assert ended["code"] == 2, ended["stderr"]
    assert "credentials are not valid" in _last_line(ended["stderr"])
    assert _no_permanent_record_of(ended["records"], "UnrecognizedClientException")
    assert {r["status"] for r in ended["records"]} == {"ok"}
    _ends_like_every_stop(ended)


def test_a_collection_deleted_mid_run_stops_it_and_the_rerun_finishes(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    rekognition = boto3.client("rekognition", endpoint_url=emu.endpoint_url)
    rekognition.create_collection(CollectionId="staff")
    config = _config(tmp_path, '[params.index_faces]\nCollectionId = "staff"\n')
    extra = ("--operation", "index_faces", "--config", str(config))
    ended = _stopped_mid_run(
        tmp_path,
        emu,
        s3,
        lambda: rekognition.delete_collection(CollectionId="staff"),
        extra=extra,
    )
    assert ended["code"] == 2, ended["stderr"]
    assert "collection 'staff' does not exist" in _last_line(ended["stderr"])
    assert {r["status"] for r in ended["records"]} == {"ok"}
    rekognition.create_collection(CollectionId="staff")
    out = tmp_path / "out.jsonl"
    rerun = batchrek(*ended["args"], output=out)
    assert rerun.code == 0, rerun.stderr
    assert exactly_once(rerun.records, {(f"i{n}", "index_faces") for n in range(IMAGES)})


def test_a_bucket_no_s3object_could_be_read_from_is_named_once(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    lines = "".join(f"s3://{s3.bucket_use1}/never-uploaded/{n}.jpg\n" for n in range(8))
    manifest = tmp_path / "m.txt"
    manifest.write_text(lines)
    out = tmp_path / "out.jsonl"
    res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), output=out)
    said = f"every S3Object call for bucket {s3.bucket_use1} failed with InvalidS3ObjectException"
    assert res.code == 1, res.stderr
    assert [r["error"]["code"] for r in res.records] == ["InvalidS3ObjectException"] * 8
    assert res.stderr.count(said) == 2  # the log line, and the summary's warning
