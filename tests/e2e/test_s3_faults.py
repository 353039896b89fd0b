"""S3 that throttles or fails, through the CLI: part uploads and source downloads are
retried; an upload that never succeeds stops the run cleanly with every paid result
kept in the local spool, and the rerun uploads them without calling again.

S3 is moto's server behind ``s3proxy.FaultProxy`` (127.0.0.1), which answers
``503 SlowDown`` for the requests a test chooses; ``--s3-endpoint-url`` points at it.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from batchrek.emulator import EmulatorHandle
from batchrek.testing import corpus
from tests.conftest import S3Bed
from tests.e2e.clirun import batchrek, run_args
from tests.e2e.production import exactly_once, image_manifest, parse_lines, write_jsonl
from tests.e2e.s3proxy import WRITES, fault_proxy

pytestmark = pytest.mark.slow

OP = "detect_labels"
IMAGES = 20
STALLED_IMAGES = 60


def _parts(s3: S3Bed, uri: str) -> list[dict[str, Any]]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    client = s3.client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    bodies = [client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed]
    return [r for body in bodies for r in parse_lines(body)]


def _billed(emu: EmulatorHandle) -> dict[str, int]:
    return emu.analyses("DetectLabels")


def _config(folder: Path, **settings: object) -> Path:
    path = folder / "batchrek.toml"
    path.write_text("".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in settings.items()))
    return path


def test_slow_down_on_part_uploads_is_retried_and_every_result_lands_once(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    manifest = image_manifest(tmp_path, IMAGES, salt=31)
    uri = f"s3://{s3.bucket_use1}/faults/{uuid.uuid4().hex}/"
    config = _config(tmp_path, part_records=5, spool_dir=str(tmp_path / "spool"))
    with fault_proxy(s3.endpoint_url) as proxy:
        proxy.fail(WRITES, times=3)
        res = batchrek(
            *run_args(manifest, uri, emu.endpoint_url, proxy.url), "--config", str(config)
        )
    expected = {(f"i{n}", OP) for n in range(IMAGES)}
    assert (res.code, sum(proxy.refused.values())) == (0, 3), res.stderr
    assert exactly_once(_parts(s3, uri), expected)
    assert sorted(_billed(emu).values()) == [1] * IMAGES


@pytest.fixture
def stalled(tmp_path: Path, emu: EmulatorHandle, s3: S3Bed) -> dict[str, Any]:
    """A run whose part uploads S3 always refuses, then a rerun once S3 is healthy.
    The first run is paced (--rate 10) so that most of its images are still to come
    when the first part fails: they must not be called."""
    manifest = image_manifest(tmp_path, STALLED_IMAGES, salt=32)
    uri = f"s3://{s3.bucket_use1}/faults/{uuid.uuid4().hex}/"
    config = _config(tmp_path, part_records=5, spool_dir=str(tmp_path / "spool"))
    with fault_proxy(s3.endpoint_url) as proxy:
        # Uploads fail for ever once the run is under way; starting one still works,
        # so the pre-billing probe of the output (create + abort) passes.
        proxy.fail(WRITES - {"create_upload"}, times=None)
        args = [*run_args(manifest, uri, emu.endpoint_url, proxy.url), "--config", str(config)]
        first = batchrek(*args, "--max-attempts", "2", "--rate", "10")
        parts_after_first = _parts(s3, uri)
        billed_first = sum(_billed(emu).values())
        proxy.heal()
        rerun = batchrek(*args)
    return {
        "first": first,
        "rerun": rerun,
        "parts_after_first": parts_after_first,
        "billed_first": billed_first,
        "parts": _parts(s3, uri),
        "billed": _billed(emu),
        "expected": {(f"i{n}", OP) for n in range(STALLED_IMAGES)},
    }


def test_an_upload_that_never_succeeds_stops_the_run_with_exit_74_and_no_traceback(
    stalled: dict[str, Any],
) -> None:
    first = stalled["first"]
    last = first.stderr.strip().splitlines()[-1]
    assert (first.code, "Traceback" in first.stderr) == (74, False), first.stderr
    assert last.startswith("batchrek: error: cannot write the output s3://")
    assert "Nothing is lost: the results wait in the spool" in last


def test_a_stalled_run_stops_billing(stalled: dict[str, Any]) -> None:
    assert stalled["parts_after_first"] == []
    assert stalled["billed_first"] < STALLED_IMAGES // 2


def test_the_rerun_uploads_the_spool_and_finishes_exactly_once(
    stalled: dict[str, Any],
) -> None:
    assert stalled["rerun"].code == 0, stalled["rerun"].stderr
    assert exactly_once(stalled["parts"], stalled["expected"])


def test_nothing_the_stalled_run_paid_for_is_paid_for_again(stalled: dict[str, Any]) -> None:
    assert sorted(stalled["billed"].values()) == [1] * STALLED_IMAGES


def test_slow_down_on_source_downloads_is_retried(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    # A bucket in another region: its images are downloaded (GetObject), not referenced.
    prefix = f"faults/{uuid.uuid4().hex}"
    keys = [f"{prefix}/img-{n}.jpg" for n in range(4)]
    for n, key in enumerate(keys):
        s3.put(s3.bucket_euw1, key, corpus.photo(120 + n, 100))
    manifest = write_jsonl(
        tmp_path / "m.jsonl",
        ({"id": f"s{n}", "image": f"s3://{s3.bucket_euw1}/{k}"} for n, k in enumerate(keys)),
    )
    out = tmp_path / "out.jsonl"
    with fault_proxy(s3.endpoint_url) as proxy:
        proxy.fail({"get_object"}, times=3)
        res = batchrek(*run_args(manifest, out, emu.endpoint_url, proxy.url), output=out)
    assert (res.code, proxy.refused["get_object"]) == (0, 3), res.stderr
    assert {r["status"] for r in res.records} == {"ok"}


def test_503_on_url_downloads_is_retried(tmp_path: Path, emu: EmulatorHandle, s3: S3Bed) -> None:
    out = tmp_path / "out.jsonl"
    with fault_proxy(s3.endpoint_url) as proxy:
        urls = [proxy.serve(f"/img/u{n}.jpg", corpus.photo(130 + n, 100)) for n in range(3)]
        manifest = write_jsonl(
            tmp_path / "m.jsonl", ({"id": f"u{n}", "image": u} for n, u in enumerate(urls))
        )
        proxy.fail({"get_object"}, times=2, code="ServiceUnavailable")
        args = run_args(manifest, out, emu.endpoint_url, s3.endpoint_url)
        res = batchrek(*args, "--allow-http", "--allow-loopback-addresses", output=out)
    assert (res.code, proxy.refused["get_object"]) == (0, 2), res.stderr
    assert {r["status"] for r in res.records} == {"ok"}
