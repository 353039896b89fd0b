"""Where processes sharing a quota leave their notes, and the loop that moves them.

``call.peers`` folds notes into the rate controls; this module reads and writes
them: a folder (``LocalBoard``: pods on one machine or a shared volume, and tests)
or an S3 prefix (``S3Board``: pods anywhere). A note is ``<peer>.peer`` (not
``.json``: ``batchrek export`` of an output prefix reads every ``.json`` there), and
a note a day old is deleted by whoever reads it (best effort), so a nightly job's
folder does not fill up.

Notes are a help, never a dependency: a board that cannot be read or written is
logged once and the run goes on, each process finding its share from its own
throttles alone. Nothing here is billed; an S3 board costs one PUT, one LIST and
one GET per fresh peer each ``interval_s`` (about 0.1 % of what the Rekognition
calls at the same rate cost, for 10 pods).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup

from batchrek.call import PeerNote, PeerShare, RateControl
from batchrek.config import Settings
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
_FORGET_S = 86_400.0  # a note this old is deleted by its reader
_STALE_INTERVALS = 5  # a peer silent this many intervals has left


class PeerBoard(Protocol):
    """Somewhere every process of a job can write its note and read the others'."""

    @property
    def where(self) -> str: ...

    async def publish(self, note: PeerNote) -> None: ...

    async def read(self, *, fresh_s: float) -> list[PeerNote]: ...


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
    """Shards are named by index (a restarted pod takes its own note back); other
    processes by host and pid."""
    if (settings.shard_count or 1) > 1:
        return f"shard-{settings.shard_index or 0:04d}-of-{settings.shard_count:04d}"
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class LocalBoard:
    """A folder of notes, each replaced atomically (write, then rename)."""

    path: Path

    @property
    def where(self) -> str:
        return str(self.path)

    async def publish(self, note: PeerNote) -> None:
        await anyio.to_thread.run_sync(self._write, note)

    async def read(self, *, fresh_s: float) -> list[PeerNote]:
        return await anyio.to_thread.run_sync(self._read, fresh_s)

    def _write(self, note: PeerNote) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        final = self.path / f"{note.peer}{_SUFFIX}"
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        tmp.write_bytes(note.to_json())
        os.replace(tmp, final)

    def _read(self, fresh_s: float) -> list[PeerNote]:
        notes = []
        now = time.time()
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            return []
        for entry in entries:
            if not entry.name.endswith(_SUFFIX) or not entry.is_file(follow_symlinks=False):
                continue
            try:
                age = now - entry.stat().st_mtime
                if age > _FORGET_S:
                    os.unlink(entry.path)
                    continue
                if age > fresh_s:
                    continue
                with open(entry.path, "rb") as f:
                    note = PeerNote.from_json(f.read(64 * 1024))
            except OSError:
                continue  # replaced or removed while we looked
            if note is not None:
                notes.append(note)
        return notes


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

    async def read(self, *, fresh_s: float) -> list[PeerNote]:
        now = time.time()
        fresh, old = [], []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix}
        while True:
            page = await self.s3.list_objects_v2(**kwargs)
            for entry in page.get("Contents", ()):
                key = entry["Key"]
                if not key.endswith(_SUFFIX):
                    continue
                age = now - entry["LastModified"].timestamp()
                if age > _FORGET_S:
                    old.append(key)
                elif age <= fresh_s:
                    fresh.append(key)
            if not page.get("IsTruncated"):
                break
            kwargs["ContinuationToken"] = page["NextContinuationToken"]
        notes = []
        for key in fresh:
            try:
                response = await self.s3.get_object(Bucket=self.bucket, Key=key)
                body = response["Body"]
                try:
                    data = await body.read()
                finally:
                    body.close()
            except Exception as exc:  # gone between the LIST and the GET
                log.debug("peers: cannot read %s: %s", key, exc)
                continue
            if (note := PeerNote.from_json(data)) is not None:
                notes.append(note)
        for key in old:
            try:
                await self.s3.delete_object(Bucket=self.bucket, Key=key)
            except Exception as exc:  # no s3:DeleteObject: the note just stays
                log.debug("peers: cannot delete the old note %s: %s", key, exc)
        return notes


def open_peers(
    settings: Settings, controls: dict[str, RateControl], s3: Any
) -> tuple[PeerBoard, PeerShare] | None:
    """The board and the share for this run, or None when it shares with nobody."""
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
        wall=time.time,
        stale_s=_STALE_INTERVALS * settings.peer_interval_s,
    )
    return board, share


def start_peers(
    tg: TaskGroup, settings: Settings, controls: dict[str, RateControl], s3: Any
) -> PeerShare | None:
    """Start sharing the quota's notes in ``tg`` (cancel it to stop), if this run
    shares with anybody."""
    found = open_peers(settings, controls, s3)
    if found is None:
        return None
    board, share = found
    log.info("peers: sharing the quota through %s as %s", board.where, share.me)
    tg.start_soon(partial(exchange, board, share, interval_s=settings.peer_interval_s))
    return share


async def exchange(
    board: PeerBoard,
    share: PeerShare,
    *,
    interval_s: float,
    sleep: Callable[[float], Any] = anyio.sleep,
) -> None:
    """Write this process's note and fold the others' every ``interval_s``, until
    cancelled; then write a last note that says this process is done, so the others
    take up its rate at once rather than when its notes go stale."""
    failing = False
    try:
        while True:
            try:
                await board.publish(share.note())
                share.observe(await board.read(fresh_s=_STALE_INTERVALS * interval_s))
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
            await sleep(interval_s)
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(2.0):
            try:
                await board.publish(share.note(done=True))
            except Exception as exc:
                log.debug("peers: the last note was not written: %s", exc)
        others = len(share.seen)
        log.info(
            "peers: shared the quota with %d other process%s (at most %d at once)",
            others,
            "" if others == 1 else "es",
            share.most,
        )
