"""Shards with ``--rate auto`` share one quota through notes (peers = auto).

CLI processes run at once over one manifest, each one shard, against an emulator
whose quota none of them is told. With a file output the notes go in
``out.peers/`` beside it; with an S3 output under the prefix's ``_peers/`` (moto).
Each process must see the others, end with a note that says it is done, and
together write every pair exactly once. How evenly they split the quota is measured
by scripts/bench_throughput.py (shards part) and simulated in tests/call/test_peers.py,
never timed here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from batchrek.config import Settings
from batchrek.emulator import EmulatorHandle
from batchrek.run.peers import peer_name
from tests.conftest import S3Bed
from tests.e2e.clirun import read_records, run_args
from tests.e2e.production import Child, distinct_images, exactly_once, wait_until, write_jsonl

pytestmark = pytest.mark.slow

IMAGES = 80
QUOTA = 20  # TPS, the emulator's; the processes are not told
OP = "detect_labels"
FAST_NOTES = {"BATCHREK_PEER_INTERVAL_S": "0.5"}  # a run of a few seconds
HOLD_MS = 3000


@dataclass(frozen=True)
class Job:
    codes: list[int | None]
    stderrs: list[str]
    ids: list[str]


def _run_shards(emulator: EmulatorHandle, s3: S3Bed, folder: Path, output: str, shards: int) -> Job:
    imgs = distinct_images(folder / "imgs", IMAGES, salt=29)
    ids = [f"peer-{n:03d}" for n in range(IMAGES)]
    manifest = write_jsonl(
        folder / "m.jsonl", ({"id": i, "image": str(p)} for i, p in zip(ids, imgs, strict=True))
    )
    common = run_args(manifest, output, emulator.endpoint_url, s3.endpoint_url)
    emulator.reset(settings=True)
    # Held at first: the processes must overlap to see each other, and on a loaded
    # machine one can start a second or two after another has finished a short run.
    # Every call takes HOLD_MS until all have said they share and a few notes have
    # gone by; then the run goes at its normal pace.
    emulator.configure(latency_ms=HOLD_MS, quota_tps=QUOTA)
    children = [
        Child(
            [*common, "--shard-index", str(i), "--shard-count", str(shards)],
            log=folder / f"stderr-{i}.txt",
            env=FAST_NOTES,
        )
        for i in range(shards)
    ]
    try:
        wait_until(
            lambda: all("peers: sharing the quota" in c.stderr() for c in children),
            timeout_s=60,
        )
        time.sleep(1.5)  # three notes each
        emulator.configure(latency_ms=20)
        codes = [child.wait(120) for child in children]
    finally:
        for child in children:
            if child.running:
                child.kill()
    emulator.reset(settings=True)
    return Job(codes=codes, stderrs=[c.stderr() for c in children], ids=ids)


@pytest.fixture(scope="module")
def local(
    emulator: EmulatorHandle, s3: S3Bed, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Job, Path]:
    folder = tmp_path_factory.mktemp("peers")
    out = folder / "out.jsonl"
    return _run_shards(emulator, s3, folder, str(out), 3), out


def test_every_shard_exits_0(local: tuple[Job, Path]) -> None:
    job, _ = local
    assert job.codes == [0, 0, 0], job.stderrs


def test_each_shard_saw_the_other_two(local: tuple[Job, Path]) -> None:
    job, _ = local
    for i, err in enumerate(job.stderrs):
        assert f"sharing the quota through {local[1].parent / 'out.peers'} as shard-000{i}-" in err
        assert "shared the quota with 2 other processes" in err, err
        assert "  peers:      shared the quota with 2 other process(es) through " in err, err


def test_the_notes_sit_beside_the_output_and_say_done(local: tuple[Job, Path]) -> None:
    _, out = local
    folder = out.parent / "out.peers"
    names = sorted(p.name for p in folder.iterdir())
    job = peer_name(Settings(output=str(out), shard_count=3)).rsplit("-", 1)[1]
    assert names == [f"shard-000{i}-of-0003-{job}.peer" for i in range(3)]
    notes = [orjson.loads((folder / n).read_bytes()) for n in names]
    assert all(n["done"] for n in notes)
    assert all(OP in n["rates"] for n in notes)


def test_the_shards_write_every_pair_exactly_once(local: tuple[Job, Path]) -> None:
    job, out = local
    records: list[dict[str, Any]] = []
    for i in range(3):
        records += read_records(out.with_name(f"out.shard-000{i}-of-0003.jsonl"))
    assert exactly_once(records, {(i, OP) for i in job.ids})


def test_shards_with_an_s3_output_share_through_the_prefix(
    emulator: EmulatorHandle, s3: S3Bed, tmp_path: Path
) -> None:
    prefix = f"peers-e2e-{tmp_path.name}/"
    job = _run_shards(emulator, s3, tmp_path, f"s3://{s3.bucket_use1}/{prefix}", 2)
    assert job.codes == [0, 0], job.stderrs
    for err in job.stderrs:
        assert "shared the quota with 1 other process " in err, err
    listed = s3.client().list_objects_v2(Bucket=s3.bucket_use1, Prefix=f"{prefix}_peers/")
    keys = sorted(o["Key"].rsplit("/", 1)[1] for o in listed.get("Contents", ()))
    assert [k.rsplit("-", 1)[0] for k in keys] == ["shard-0000-of-0002", "shard-0001-of-0002"]
