"""Where processes sharing a quota leave their notes, and the loop that moves them.

``call.peers`` folds notes into the rate controls; this module reads and writes
them: a folder (``LocalBoard``: pods on one machine or a shared volume, and tests)
or an S3 prefix (``S3Board``: pods anywhere). A note is ``<peer>.peer`` (not
``.json``: ``batchrek export`` of an output prefix reads every ``.json`` there).
Each process sweeps notes a day old once when it starts (best effort), so a nightly
job's folder does not fill up; notes written in the last ``_RECENT_S`` (by the
storage's clock) are read, and ``call.peers`` decides on its own clock which live.

Notes are a help, never a dependency: a board that cannot be read or written is
logged once and the run goes on, each process finding its share from its own
throttles alone. Folder I/O runs on abandonable threads (a hung network mount never
holds up the run's end). An S3 board costs, per process and ``interval_s``, one PUT,
one LIST and one GET per peer: for N pods N**2 GETs an interval (10 pods at 2 s:
~2,700 GETs, 300 PUTs and 300 LISTs a minute, ~$0.004; S3 allows 5,500 GETs/s a
prefix, so over ~100 pods raise ``peer_interval_s``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup

from batchrek.blocking import run_abandonable
from batchrek.call import PeerNote, PeerShare, RateControl
from batchrek.config import Settings
from batchrek.observe import Findings
from batchrek.s3uri import is_s3_uri, parse_s3_prefix

__all__ = [
    "LocalBoard",
    "PeerBoard",
    "S3Board",
    "exchange",
    "open_peers",
    "peers_location",
    "start_peers",
]

log = logging.getLogger("batchrek.peers")

_SUFFIX = ".peer"
_FORGET_S = 86_400.0  # a note this old is swept when a process starts
_RECENT_S = 600.0  # notes written longer ago (storage clock) are not even read
_STALE_INTERVALS = 5  # a peer silent this many intervals has left
_ALONE_INTERVALS = 5  # no peer seen after this many intervals: said once


class PeerBoard(Protocol):
    """Somewhere every process of a job can write its note and read the others'."""

    @property
    def where(self) -> str: ...

    async def publish(self, note: PeerNote) -> None: ...

    async def read(self) -> list[PeerNote]: ...

    async def sweep(self) -> int: ...


def peers_location(settings: Settings) -> str | None:
    """The board for this run, or None: ``peers = "auto"`` shares through a folder
    beside the output (``out.peers/`` for ``out.jsonl``, ``prefix/_peers/`` for an S3
    prefix) when the run is one shard of several and some rate is ``auto``."""
    choice = settings.peers
    if choice == "off":
        return None
    if choice != "auto":
        return choice
    if (settings.shard_count or 1) <= 1 or all(
        settings.fixed_rate(op.method) is not None for op in settings.build_operations()
    ):
        return None
    if is_s3_uri(settings.output):
        bucket, prefix = parse_s3_prefix(settings.output)
        return f"s3://{bucket}/{prefix}_peers/"
    root, _ = os.path.splitext(settings.output)
    return f"{root}.peers"


def peer_name(settings: Settings) -> str:
    """Shards are named by index and their job's output (a restarted pod takes its
    own note back; two jobs sharing one notes folder never take each other's);
    other processes by host and pid."""
    if (settings.shard_count or 1) > 1:
        job = hashlib.blake2b(settings.output.encode(), digest_size=4).hexdigest()
        return f"shard-{settings.shard_index or 0:04d}-of-{settings.shard_count:04d}-{job}"
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class LocalBoard:
    """A folder of notes, each replaced atomically (write, then rename)."""

    path: Path

    @property
    def where(self) -> str:
        return str(self.path)

    async def publish(self, note: PeerNote) -> None:
        await run_abandonable(self._write, note)

    async def read(self) -> list[PeerNote]:
        return await run_abandonable(self._read)

    async def sweep(self) -> int:
        return await run_abandonable(self._sweep)

    def _write(self, note: PeerNote) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        final = self.path / f"{note.peer}{_SUFFIX}"
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_bytes(note.to_json())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def _notes(self) -> list[os.DirEntry[str]]:
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            return []
        return [e for e in entries if e.name.endswith(_SUFFIX) and e.is_file(follow_symlinks=False)]

    def _read(self) -> list[PeerNote]:
        notes = []
        now = time.time()
        for entry in self._notes():
            try:
                if now - entry.stat().st_mtime > _RECENT_S:
                    continue
                with open(entry.path, "rb") as f:
                    note = PeerNote.from_json(f.read(64 * 1024))
            except OSError:
                continue  # replaced or removed while we looked
            if note is not None:
                notes.append(note)
        return notes

    def _sweep(self) -> int:
        swept = 0
        now = time.time()
        for entry in self._notes():
            try:
                if now - entry.stat().st_mtime > _FORGET_S:
                    os.unlink(entry.path)
                    swept += 1
            except OSError:
                continue
        return swept


@dataclass
class S3Board:
    """An S3 prefix of notes: PUT replaces one whole; LIST says which are fresh, so
    only those are fetched."""

    s3: Any
    bucket: str
    prefix: str

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    async def publish(self, note: PeerNote) -> None:
        key = f"{self.prefix}{note.peer}{_SUFFIX}"
        await self.s3.put_object(Bucket=self.bucket, Key=key, Body=note.to_json())

    async def _listed(self) -> list[tuple[str, float]]:
        """(key, seconds since it was written, by S3's clock) of every note."""
        now = time.time()
        found = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix}
        while True:
            page = await self.s3.list_objects_v2(**kwargs)
            for entry in page.get("Contents", ()):
                if entry["Key"].endswith(_SUFFIX):
                    found.append((entry["Key"], now - entry["LastModified"].timestamp()))
            if not page.get("IsTruncated"):
                return found
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    async def read(self) -> list[PeerNote]:
        notes = []
        for key, age in await self._listed():
            if age > _RECENT_S:
                continue
            try:
                response = await self.s3.get_object(Bucket=self.bucket, Key=key)
                body = response["Body"]
                try:
                    data = await body.read()
                finally:
                    body.close()
            except Exception as exc:  # gone between the LIST and the GET: a missed
                log.debug("peers: cannot read %s: %s", key, exc)  # read changes nothing
                continue
            if (note := PeerNote.from_json(data)) is not None:
                notes.append(note)
        return notes

    async def sweep(self) -> int:
        old = [key for key, age in await self._listed() if age > _FORGET_S]
        for start in range(0, len(old), 1000):
            batch = [{"Key": key} for key in old[start : start + 1000]]
            await self.s3.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
            )
        return len(old)


def open_peers(
    settings: Settings, controls: dict[str, RateControl], s3: Any, *, scope: str
) -> tuple[PeerBoard, PeerShare] | None:
    """The board and the share for this run, or None when it shares with nobody.
    ``scope`` names the quota (region and endpoint): notes of another are ignored."""
    where = peers_location(settings)
    if where is None:
        return None
    board: PeerBoard
    if is_s3_uri(where):
        bucket, prefix = parse_s3_prefix(where)
        board = S3Board(s3, bucket, prefix)
    else:
        board = LocalBoard(Path(where))
    share = PeerShare(
        peer_name(settings),
        controls,
        clock=time.monotonic,
        stale_s=_STALE_INTERVALS * settings.peer_interval_s,
        scope=scope,
        first_seq=secrets.randbelow(1 << 40),  # a restarted process's seq moves on
    )
    return board, share


def start_peers(
    tg: TaskGroup,
    settings: Settings,
    controls: dict[str, RateControl],
    svc: Any,
    findings: Findings | None = None,
) -> PeerShare | None:
    """Start sharing the quota's notes in ``tg`` (cancel it to stop), if this run
    shares with anybody; ``svc``: the run's ``Services`` (S3 client, region, endpoint).
    At the end, ``findings`` (the run's metrics) gets who it shared with."""
    scope = f"{svc.region} {svc.rekognition_endpoint}"
    found = open_peers(settings, controls, svc.s3, scope=scope)
    if found is None:
        return None
    board, share = found
    log.info("peers: sharing the quota through %s as %s", board.where, share.me)
    tg.start_soon(
        partial(exchange, board, share, interval_s=settings.peer_interval_s, findings=findings)
    )
    return share


async def exchange(
    board: PeerBoard,
    share: PeerShare,
    *,
    interval_s: float,
    sleep: Callable[[float], Any] = anyio.sleep,
    findings: Findings | None = None,
) -> None:
    """Write this process's note and fold the others' every ``interval_s``, until
    cancelled; then write a last note that says this process is done, so the others
    take up its rate at once rather than when its notes go stale."""
    failing = False
    rounds = 0
    try:
        with anyio.move_on_after(5 * interval_s):
            try:
                if swept := await board.sweep():
                    log.info("peers: cleared %d note(s) a day old from %s", swept, board.where)
            except Exception as exc:  # no delete permission: the old notes just stay
                log.debug("peers: cannot clear old notes: %s", exc)
        while True:
            try:
                await board.publish(share.note())
                share.observe(await board.read())
                if failing:
                    log.info("peers: %s answers again", board.where)
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning(
                        "peers: cannot use %s (%s): this process finds its share of the "
                        "quota alone until it can",
                        board.where,
                        exc,
                    )
                failing = True
            rounds += 1
            if rounds == _ALONE_INTERVALS and share.most == 1 and not failing:
                log.info(
                    "peers: no other process has written to %s yet (pods on separate "
                    "disks? give them --peers s3://bucket/prefix/)",
                    board.where,
                )
            await sleep(interval_s)
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(2.0):
            try:
                await board.publish(share.note(done=True))
            except Exception as exc:
                log.debug("peers: the last note was not written: %s", exc)
        others = len(share.seen)
        if findings is not None:
            findings.shared(where=board.where, me=share.me, others=others, most=share.most)
        log.info(
            "peers: shared the quota with %d other process%s (at most %d at once)",
            others,
            "" if others == 1 else "es",
            share.most,
        )
