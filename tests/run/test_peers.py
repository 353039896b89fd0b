"""Where peers' notes live (run.peers): a folder, an S3 prefix on moto, the loop."""

from __future__ import annotations

import logging
import os
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
from batchrek.run.peers import LocalBoard, S3Board, exchange, peer_name, peers_location
from tests.conftest import S3Bed

pytestmark = pytest.mark.anyio


def _note(peer: str, *, age: float = 0.0, done: bool = False) -> PeerNote:
    return PeerNote(peer=peer, wall=time.time() - age, done=done, rates={"detect_labels": 7.0})


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


def test_shards_are_named_by_index_other_processes_by_host_and_pid() -> None:
    assert peer_name(_settings(shard_count=8, shard_index=3)) == "shard-0003-of-0008"
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
    notes = await board.read(fresh_s=10.0)
    assert sorted((n.peer, n.done) for n in notes) == [("a", False), ("b", True)]
    assert sorted(p.name for p in (tmp_path / "peers").iterdir()) == ["a.peer", "b.peer"]


async def test_a_folder_board_skips_stale_torn_and_foreign_files(tmp_path: Path) -> None:
    board = LocalBoard(tmp_path)
    await board.publish(_note("fresh"))
    await board.publish(_note("stale"))
    hour_ago = time.time() - 3600
    os.utime(tmp_path / "stale.peer", (hour_ago, hour_ago))
    (tmp_path / "torn.peer").write_bytes(b'{"v": 1, "pe')
    (tmp_path / "results.jsonl").write_bytes(b"{}\n")
    assert [n.peer for n in await board.read(fresh_s=10.0)] == ["fresh"]


async def test_a_note_a_day_old_is_deleted_by_its_reader(tmp_path: Path) -> None:
    board = LocalBoard(tmp_path)
    await board.publish(_note("old"))
    two_days = time.time() - 2 * 86_400
    os.utime(tmp_path / "old.peer", (two_days, two_days))
    assert await board.read(fresh_s=10.0) == []
    assert not (tmp_path / "old.peer").exists()


async def test_a_missing_folder_reads_as_no_notes(tmp_path: Path) -> None:
    assert await LocalBoard(tmp_path / "not-yet").read(fresh_s=10.0) == []


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
    notes = await board.read(fresh_s=10.0)
    assert sorted((n.peer, n.done) for n in notes) == [("a", True), ("b", False)]
    assert board.where == f"s3://{s3.bucket_use1}/{prefix}"


async def test_an_s3_board_fetches_only_fresh_notes(client: Any, s3: S3Bed) -> None:
    board = S3Board(client, s3.bucket_use1, f"peers-{uuid.uuid4().hex}/")
    await board.publish(_note("a"))
    # LastModified is now: a fresh_s of 0 makes every note stale before it is read.
    await anyio.sleep(0.05)
    assert await board.read(fresh_s=0.0) == []


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

    async def read(self, *, fresh_s: float) -> list[PeerNote]:
        if self.failing:
            raise OSError("disk gone")
        return list(self.notes.values())


def _share() -> tuple[PeerShare, RateControl]:
    control = RateControl(fixed_tps=None, start_tps=10.0, clock=FakeClock())
    return PeerShare("me", {"detect_labels": control}, wall=time.time, stale_s=10.0), control


async def test_the_loop_publishes_reads_and_ends_with_a_done_note() -> None:
    board, (share, _) = Board(), _share()
    board.notes["other"] = _note("other")
    rounds = 0

    async def sleep(_: float) -> None:
        nonlocal rounds
        rounds += 1
        if rounds == 3:
            raise anyio.get_cancelled_exc_class()
        await anyio.lowlevel.checkpoint()

    with pytest.raises(anyio.get_cancelled_exc_class()):
        await exchange(board, share, interval_s=1.0, sleep=sleep)
    assert board.notes["me"].done
    assert share.seen == {"other"}


async def test_a_failing_board_is_logged_once_and_never_stops_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    board, (share, control) = Board(), _share()
    board.failing = True
    rounds = 0

    async def sleep(_: float) -> None:
        nonlocal rounds
        rounds += 1
        if rounds == 5:
            raise anyio.get_cancelled_exc_class()
        await anyio.lowlevel.checkpoint()

    with (
        caplog.at_level(logging.WARNING, logger="batchrek.peers"),
        pytest.raises(anyio.get_cancelled_exc_class()),
    ):
        await exchange(board, share, interval_s=1.0, sleep=sleep)
    warnings = [r for r in caplog.records if "cannot use memory" in r.getMessage()]
    assert len(warnings) == 1
    assert "finds its share of the quota alone" in warnings[0].getMessage()
    assert control.rate == 10.0
