"""Output to S3: rolling part files under a prefix, a SIGKILL mid-run, then a rerun.

``part_records = 5`` comes from a config file, so part files appear while the run is
still going. The kill loses no record that reached the local spool (never a
half-written object): the rerun uploads the spool's open part first, redoes only the
calls that were in flight, and reading every part back gives exactly one record per
(id, operation).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from batchrek.emulator import EmulatorHandle
from tests.conftest import S3Bed
from tests.e2e.clirun import batchrek, run_args
from tests.e2e.production import (
    Child,
    exactly_once,
    image_manifest,
    list_keys,
    parse_lines,
    wait_until,
)

pytestmark = pytest.mark.slow

IMAGES = 80
PART_RECORDS = 5
OP = "detect_labels"


@dataclass(frozen=True)
class S3Run:
    parts_at_kill: list[str]
    rerun_code: int
    rerun_stderr: str
    parts: dict[str, bytes]  # key -> body, after the rerun
    expected: frozenset[tuple[str, str]]
    billed: dict[str, int]  # analyses per image, over both runs


@pytest.fixture(scope="module")
def s3_run(emulator: EmulatorHandle, s3: S3Bed, tmp_path_factory: pytest.TempPathFactory) -> S3Run:
    folder = tmp_path_factory.mktemp("s3out")
    manifest = image_manifest(folder, IMAGES, salt=19)
    config = folder / "batchrek.toml"
    config.write_text(f"part_records = {PART_RECORDS}\n")
    prefix = f"production/{uuid.uuid4()}/"
    output = f"s3://{s3.bucket_use1}/{prefix}"
    common = [*run_args(manifest, output, emulator.endpoint_url, s3.endpoint_url)]
    common += ["--config", str(config)]
    client = s3.client()
    emulator.reset(settings=True)
    emulator.configure(latency_ms=30)
    child = Child([*common, "--rate", "20"], log=folder / "stderr.txt")
    try:
        wait_until(lambda: len(list_keys(client, s3.bucket_use1, prefix)) >= 2, timeout_s=60)
    finally:
        child.kill()
    at_kill = list_keys(client, s3.bucket_use1, prefix)
    emulator.configure(latency_ms=0)
    rerun = batchrek(*common, "--rate", "1000")
    billed = emulator.analyses("DetectLabels")
    emulator.reset(settings=True)
    parts = {
        key: client.get_object(Bucket=s3.bucket_use1, Key=key)["Body"].read()
        for key in list_keys(client, s3.bucket_use1, prefix)
    }
    return S3Run(
        parts_at_kill=at_kill,
        rerun_code=rerun.code,
        rerun_stderr=rerun.stderr,
        parts=parts,
        expected=frozenset((f"i{n}", OP) for n in range(IMAGES)),
        billed=billed,
    )


def test_part_files_appear_while_the_run_goes_on(s3_run: S3Run) -> None:
    assert 2 <= len(s3_run.parts_at_kill) < IMAGES // PART_RECORDS


def test_part_files_carry_shard_0_in_their_names(s3_run: S3Run) -> None:
    names = [key.rsplit("/", 1)[1] for key in s3_run.parts]
    assert names
    assert all(n.startswith("part-") and "-0000-" in n for n in names)


def test_part_records_from_the_config_file_caps_each_part(s3_run: S3Run) -> None:
    assert {len(parse_lines(body)) for body in s3_run.parts.values()} <= set(
        range(1, PART_RECORDS + 1)
    )


def test_every_part_is_whole_lines(s3_run: S3Run) -> None:
    assert all(body.endswith(b"\n") for body in s3_run.parts.values())


def test_rerun_after_the_kill_exits_0(s3_run: S3Run) -> None:
    assert s3_run.rerun_code == 0, s3_run.rerun_stderr


def test_parts_hold_exactly_one_record_per_pair_after_the_rerun(s3_run: S3Run) -> None:
    records = [r for body in s3_run.parts.values() for r in parse_lines(body)]
    assert exactly_once(records, s3_run.expected)


def test_the_kill_re_bills_no_more_than_the_calls_in_flight(s3_run: S3Run) -> None:
    concurrency = 8  # run_args
    assert sum(s3_run.billed.values()) - IMAGES <= concurrency
