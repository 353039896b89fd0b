"""Where peers' notes live (run.peers): a folder, an S3 prefix on moto, the loop."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aioboto3
import anyio
import pytest

from batchrek.call import PeerNote, PeerShare, RateControl
from batchrek.clock import FakeClock
from batchrek.config import Settings
from batchrek.observe import Findings
from batchrek.run.peers import LocalBoard, S3Board, exchange, peer_name, peers_location
from tests.conftest import S3Bed

pytestmark = pytest.mark.anyio


def _note(peer: str, *, seq: int = 1, done: bool = False) -> PeerNote:
    return PeerNote(peer=peer, seq=seq, done=done, rates={"detect_labels": 7.0})


# -- where ---------------------------------------------------------------------------


def _settings(**kw: Any) -> Settings:
    base: dict[str, Any] = {"manifest": "m.jsonl", "output": "/data/out.jsonl"}
    return Settings(**(base | kw))


@pytest.mark.parametrize(
    ("kw", "where"),
    [
        ({"shard_count": 4, "shard_index": 1}, "/data/out.peers"),
        (
            {"shard_count": 4, "output": "s3://bucket/night/"},
            "s3://bucket/night/_peers/",
        ),
        ({}, None),  # one process: nobody to share with
        ({"shard_count": 4, "rate": "40"}, None),  # a fixed rate: already split
        ({"shard_count": 4, "peers": "off"}, None),
        ({"peers": "/shared/notes"}, "/shared/notes"),  # named: any processes
        ({"peers": "s3://b/notes/"}, "s3://b/notes/"),
    ],
    ids=["sharded-file", "sharded-s3", "unsharded", "fixed-rate", "off", "folder", "s3"],
)
def test_where_the_notes_go(kw: dict[str, Any], where: str | None) -> None:
    assert peers_location(_settings(**kw)) == where


def test_shards_are_named_by_index_and_job_other_processes_by_host_and_pid() -> None:
    name = peer_name(_settings(shard_count=8, shard_index=3))
    assert name.startswith("shard-0003-of-0008-")
    assert peer_name(_settings(shard_count=8, shard_index=3)) == name  # a restart: the same
    assert peer_name(_settings(shard_count=8, shard_index=3, output="/other.jsonl")) != name
    assert peer_name(_settings()).endswith(f"-{os.getpid()}")


def test_a_malformed_s3_location_is_a_config_error() -> None:
    from batchrek.errors import ConfigError

    with pytest.raises(ConfigError, match="--peers"):
        replace(_settings(), peers="s3://")


# -- a folder ------------------------------------------------------------------------


async def test_a_folder_board_reads_back_fresh_notes(tmp_path: Path) -> None:
    board = LocalBoard(tmp_path / "peers")
    await board.publish(_note("a"))
    await board.publish(_note("b", done=True))
    notes = await board.read()
    assert sorted((n.peer, n.done) for n in notes) == [("a", False), ("b", True)]
    assert sorted(p.name for p in (tmp_path / "peers").iterdir()) == ["a.peer", "b.peer"]


async def test_a_folder_board_skips_old_torn_and_foreign_files(tmp_path: Path) -> None:
    board = LocalBoard(tmp_path)
    await board.publish(_note("recent"))
    await board.publish(_note("old"))
    hour_ago = time.time() - 3600
    os.utime(tmp_path / "old.peer", (hour_ago, hour_ago))
    (tmp_path / "torn.peer").write_bytes(b'{"v": 1, "pe')
    (tmp_path / "results.jsonl").write_bytes(b"{}\n")
    assert [n.peer for n in await board.read()] == ["recent"]
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]  # none left behind


async def test_a_sweep_deletes_notes_a_day_old_and_nothing_else(tmp_path: Path) -> None:
    board = LocalBoard(tmp_path)
    await board.publish(_note("old"))
    await board.publish(_note("hour"))
    for name, age in (("old", 2 * 86_400), ("hour", 3600)):
        os.utime(tmp_path / f"{name}.peer", (time.time() - age, time.time() - age))
    assert await board.sweep() == 1
    assert sorted(os.listdir(tmp_path)) == ["hour.peer"]


async def test_a_missing_folder_reads_as_no_notes(tmp_path: Path) -> None:
    assert await LocalBoard(tmp_path / "not-yet").read() == []


# -- an S3 prefix --------------------------------------------------------------------


@pytest.fixture
async def client(s3: S3Bed) -> AsyncIterator[Any]:
    session = aioboto3.Session()
    async with session.client("s3", endpoint_url=s3.endpoint_url, region_name="us-east-1") as c:
        yield c


async def test_an_s3_board_reads_back_fresh_notes(client: Any, s3: S3Bed) -> None:
    prefix = f"peers-{uuid.uuid4().hex}/"
    board = S3Board(client, s3.bucket_use1, prefix)
    await board.publish(_note("a"))
    await board.publish(_note("b"))
    await board.publish(_note("a", done=True))  # replaced whole
    await client.put_object(Bucket=s3.bucket_use1, Key=f"{prefix}part-x.jsonl", Body=b"{}\n")
    notes = await board.read()
    assert sorted((n.peer, n.done) for n in notes) == [("a", True), ("b", False)]
    assert board.where == f"s3://{s3.bucket_use1}/{prefix}"


async def test_an_s3_sweep_deletes_only_notes_a_day_old(
    client: Any, s3: S3Bed, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"peers-{uuid.uuid4().hex}/"
    board = S3Board(client, s3.bucket_use1, prefix)
    await board.publish(_note("a"))
    await client.put_object(Bucket=s3.bucket_use1, Key=f"{prefix}part-x.jsonl", Body=b"{}\n")
    assert await board.sweep() == 0
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 2 * 86_400)  # two days on
    assert await board.read() == []  # not even read: written long ago
    assert await board.sweep() == 1
    listed = await client.list_objects_v2(Bucket=s3.bucket_use1, Prefix=prefix)
    assert [o["Key"] for o in listed["Contents"]] == [f"{prefix}part-x.jsonl"]


# -- the loop ------------------------------------------------------------------------


class Board:
    """An in-memory board that can be made to fail."""

    def __init__(self) -> None:
        self.notes: dict[str, PeerNote] = {}
        self.failing = False
        self.where = "memory"

    async def publish(self, note: PeerNote) -> None:
        if self.failing:
            raise OSError("disk gone")
        self.notes[note.peer] = note

    async def read(self) -> list[PeerNote]:
        if self.failing:
            raise OSError("disk gone")
        return list(self.notes.values())

    async def sweep(self) -> int:
        if self.failing:
            raise OSError("disk gone")
        return 0


def _share() -> tuple[PeerShare, RateControl]:
    control = RateControl(fixed_tps=None, start_tps=10.0, clock=FakeClock())
    share = PeerShare("me", {"detect_labels": control}, clock=time.monotonic, stale_s=10.0)
    return share, control


async def test_the_loop_publishes_reads_and_ends_with_a_done_note() -> None:
    board, (share, _) = Board(), _share()
    rounds = 0

    async def sleep(_: float) -> None:
        nonlocal rounds
        rounds += 1
        board.notes["other"] = _note("other", seq=rounds)  # another live process
        await anyio.lowlevel.checkpoint()

    findings = Findings()
    with anyio.move_on_after(0.5):
        await exchange(board, share, interval_s=1.0, sleep=sleep, findings=findings)
    assert rounds > 2
    assert board.notes["me"].done
    assert share.seen == {"other"}
    assert findings.summary()["peers"] == {
        "where": "memory",
        "as": "me",
        "others": 1,
        "most_at_once": 2,
    }


async def test_a_failing_board_is_logged_once_and_never_stops_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    board, (share, _) = Board(), _share()
    board.failing = True
    rounds = 0

    async def sleep(_: float) -> None:
        nonlocal rounds
        rounds += 1
        await anyio.lowlevel.checkpoint()

    with caplog.at_level(logging.WARNING, logger="batchrek.peers"), anyio.move_on_after(0.5):
        await exchange(board, share, interval_s=1.0, sleep=sleep)
    assert rounds > 2
    warnings = [r for r in caplog.records if "cannot use memory" in r.getMessage()]
    assert len(warnings) == 1
    assert "finds its share of the quota alone" in warnings[0].getMessage()


async def test_a_hung_folder_never_holds_up_the_end_of_a_run(tmp_path: Path) -> None:
    """A folder on a hung network mount: the loop is cancelled, its last note's write
    hangs, and the run's end waits at most the 2 s the last note is given."""
    release = threading.Event()

    class Hung(LocalBoard):
        def _write(self, note: PeerNote) -> None:
            release.wait(30.0)

    board, (share, _) = Hung(tmp_path), _share()
    started = time.monotonic()
    try:
        with anyio.move_on_after(0.2):
            await exchange(board, share, interval_s=0.05)
        assert time.monotonic() - started < 5.0
    finally:
        release.set()
