"""Sharding across pods: N processes over one manifest, as an Indexed Job runs them.

Three CLI processes run at once over the same manifest; two get ``--shard-index i
--shard-count 3``, the third only the environment an Indexed Job gives a pod
(``JOB_COMPLETION_INDEX``) plus ``BATCHREK_SHARD_COUNT``. With ``--rate R`` each uses
R/3, so together they stay inside a quota of R that the emulator enforces.

Also: what the shard settings do when they are incomplete or out of range.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from batchrek.emulator import EmulatorHandle
from batchrek.manifest import shard_of
from tests.conftest import S3Bed
from tests.e2e.clirun import batchrek, read_records, run_args
from tests.e2e.production import Child, distinct_images, exactly_once, image_manifest, write_jsonl

pytestmark = pytest.mark.slow

IMAGES = 90
SHARDS = 3
RATE = 30  # TPS for the whole job; also the emulator's quota
OP = "detect_labels"


def _shard_file(out: Path, index: int) -> Path:
    return out.with_name(f"out.shard-{index:04d}-of-{SHARDS:04d}.jsonl")


@dataclass(frozen=True)
class Sharded:
    codes: list[int | None]
    stderrs: list[str]
    out: Path
    per_shard: list[list[dict[str, Any]]]
    ids: list[str]
    outcomes: dict[str, int]  # DetectLabels requests by outcome, as the service saw them


@pytest.fixture(scope="module")
def sharded(
    emulator: EmulatorHandle, s3: S3Bed, tmp_path_factory: pytest.TempPathFactory
) -> Sharded:
    folder = tmp_path_factory.mktemp("shards")
    imgs = distinct_images(folder / "imgs", IMAGES, salt=13)
    ids = [f"photo-{n:03d}" for n in range(IMAGES)]
    manifest = write_jsonl(
        folder / "m.jsonl", ({"id": i, "image": str(p)} for i, p in zip(ids, imgs, strict=True))
    )
    out = folder / "out.jsonl"
    common = [*run_args(manifest, out, emulator.endpoint_url, s3.endpoint_url), "--rate", str(RATE)]
    emulator.reset(settings=True)
    emulator.configure(latency_ms=30, quota_tps=RATE)
    children = [
        Child(
            [*common, "--shard-index", str(i), "--shard-count", str(SHARDS)],
            log=folder / f"stderr-{i}.txt",
        )
        for i in range(SHARDS - 1)
    ]
    children.append(
        Child(
            common,
            log=folder / f"stderr-{SHARDS - 1}.txt",
            env={"JOB_COMPLETION_INDEX": str(SHARDS - 1), "BATCHREK_SHARD_COUNT": str(SHARDS)},
        )
    )
    try:
        codes = [child.wait(120) for child in children]
    finally:
        for child in children:
            if child.running:
                child.kill()
    outcomes = dict(emulator.stats()["requests"].get("DetectLabels", {}))
    emulator.reset(settings=True)
    return Sharded(
        codes=codes,
        stderrs=[child.stderr() for child in children],
        out=out,
        per_shard=[read_records(_shard_file(out, i)) for i in range(SHARDS)],
        ids=ids,
        outcomes=outcomes,
    )


def test_every_shard_exits_0(sharded: Sharded) -> None:
    assert sharded.codes == [0] * SHARDS, sharded.stderrs


def test_each_shard_writes_its_own_named_file(sharded: Sharded) -> None:
    written = sorted(p.name for p in sharded.out.parent.glob("out*.jsonl"))
    assert written == [_shard_file(sharded.out, i).name for i in range(SHARDS)]


def test_union_of_the_shards_is_every_pair_exactly_once(sharded: Sharded) -> None:
    union = [r for records in sharded.per_shard for r in records]
    assert exactly_once(union, {(i, OP) for i in sharded.ids})


def test_each_shard_holds_exactly_the_ids_hashed_to_it(sharded: Sharded) -> None:
    # Also proves the pod configured only by JOB_COMPLETION_INDEX took shard 2.
    held = [sorted(r["id"] for r in records) for records in sharded.per_shard]
    assert held == [sorted(i for i in sharded.ids if shard_of(i, SHARDS) == s) for s in range(3)]


def test_shards_together_stay_within_the_quota(sharded: Sharded) -> None:
    assert sharded.outcomes.get("ProvisionedThroughputExceededException", 0) == 0, sharded.outcomes


# -- incomplete or impossible shard settings ---------------------------------------------


def _tiny_manifest(folder: Path, n: int = 3) -> Path:
    return image_manifest(folder, n, salt=17, prefix="t")


@pytest.mark.parametrize(
    ("flags", "env", "says"),
    [
        ([], {"JOB_COMPLETION_INDEX": "1"}, "--shard-count (setting shard_count) is not set"),
        (["--shard-index", "3", "--shard-count", "3"], {}, "shard_index) must be in 0..2"),
        ([], {"JOB_COMPLETION_INDEX": "8", "BATCHREK_SHARD_COUNT": "8"}, "0..7"),
    ],
    ids=["index-without-count", "index-too-big", "env-index-too-big"],
)
def test_bad_shard_settings_exit_2_before_any_call(
    tmp_path: Path, emu: Any, s3: S3Bed, flags: list[str], env: dict[str, str], says: str
) -> None:
    manifest = _tiny_manifest(tmp_path)
    out = tmp_path / "out.jsonl"
    res = batchrek(*run_args(manifest, out, emu.endpoint_url, s3.endpoint_url), *flags, env=env)
    assert (res.code, says in res.stderr, emu.stats()["total_requests"]) == (2, True, 0), res.stderr


def test_completion_index_0_without_a_count_runs_the_whole_manifest_unsharded(
    tmp_path: Path, emu: Any, s3: S3Bed
) -> None:
    # Observed: index 0 alone is not an error (an Indexed Job of one completion sets
    # it), so the pod runs everything into the plain output name; any other index
    # without BATCHREK_SHARD_COUNT exits 2 (test above).
    manifest = _tiny_manifest(tmp_path)
    out = tmp_path / "out.jsonl"
    res = batchrek(
        *run_args(manifest, out, emu.endpoint_url, s3.endpoint_url),
        env={"JOB_COMPLETION_INDEX": "0"},
        output=out,
    )
    assert (res.code, sorted(p.name for p in tmp_path.glob("out*"))) == (0, ["out.jsonl"])
    assert exactly_once(res.records, {(f"t{k}", OP) for k in range(3)})
