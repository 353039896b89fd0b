"""Ledger catch-up: index what the night's own output holds that the ledger does not.

An entry is appended only after its record is durable, so a kill leaves records in
the output without entries: an S3 ledger's open chunk (up to 5 minutes of entries),
a local ledger's last append (between the output's fsync and the entries' fsync),
and every record of a part file the next run uploads from the spool. With a ledger
the output is never resumed, so without this step a Job's retry would bill those
pairs again. Before anything is billed, the run

1. finds what is not covered: the ledger keeps, per output it names, the end of the
   furthest record any entry points at (``LedgerIndex.coverage``); an output is
   read back only past that end: a file output from there to its size, an S3
   output's part files of this shard (one listing of the prefix) whose size is past
   it, with one ranged GET each. Outputs the ledger covers cost nothing more;
2. scans those bytes (``TailScan``) into the entries the killed run would have
   written, pointing at the records where they are (outputs are never rewritten);
3. appends them to this run's segment and makes them durable (an S3 segment writes
   its chunk now), plus a zero-length mark at the end of what was read when it ended
   in lines that earn no entry (errors, a torn line), so those are read only once.

The caller rebuilds the index with the entries (``as_segment``) before any verdict.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import anyio

from batchrek.ledger._index import LedgerIndex
from batchrek.ledger._segments import DurableRecord, SegmentWriter
from batchrek.ledger._tail import TailCounts, TailScan
from batchrek.output import list_parts, read_object
from batchrek.s3uri import parse_s3_prefix

__all__ = ["CatchUp", "Tail", "catch_up", "uncovered"]

log = logging.getLogger("batchrek")

CHUNK_BYTES = 4 * 1024 * 1024  # read and scanned at a time
APPEND_ENTRIES = 50_000  # handed to the segment at a time: memory stays bounded


class Tail(NamedTuple):
    """Bytes ``[start, stop)`` of ``output`` that no ledger entry covers."""

    output: str
    start: int
    stop: int


def uncovered(outputs: Iterable[tuple[str, int]], covered: Mapping[str, int]) -> list[Tail]:
    """(name, size) of each output -> what lies past the ledger's coverage of it."""
    return [
        Tail(name, covered.get(name, 0), size)
        for name, size in outputs
        if covered.get(name, 0) < size
    ]


@dataclass
class CatchUp:
    """What a catch-up found: counts, and the entries it wrote (marks included)."""

    counts: TailCounts = field(default_factory=TailCounts)
    outputs: list[str] = field(default_factory=list)  # read back, in order
    bytes_read: int = 0
    seconds: float = 0.0
    entries: list[DurableRecord] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        c = self.counts
        return {
            "caught_up": c.indexed,
            "caught_up_outputs": len(self.outputs),
            "caught_up_bytes_read": self.bytes_read,
            "caught_up_skipped": {
                "errors": c.errors,
                "unkeyed": c.unkeyed,
                "unreadable": c.unreadable,
                "torn": c.torn,
            },
        }

    def message(self) -> str:
        """The log line, or "" when there was nothing to read."""
        if not self.outputs:
            return ""
        c = self.counts
        names = [name.rsplit("/", 1)[-1] for name in self.outputs]
        where = names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more"
        skipped = [
            f"{n:,} {what}"
            for n, what in (
                (c.errors, "error records"),
                (c.unkeyed, "records without a content identity"),
                (c.unreadable, "lines that are not records"),
                (c.torn, "torn lines"),
            )
            if n
        ]
        return (
            f"ledger: {c.indexed:,} records the last run left out of the ledger indexed from "
            f"{where} ({self.bytes_read:,} bytes read back in {self.seconds:.2f} s"
            + (f"; not indexed: {', '.join(skipped)})" if skipped else ")")
        )


async def catch_up(
    index: LedgerIndex,
    output: str,
    segment: SegmentWriter | None,
    *,
    s3: Any | None,
    shard: int,
) -> CatchUp:
    """Index what ``output`` holds past the ledger's coverage (module doc). The entries
    go to ``segment`` and are durable on return; ``segment=None`` only reads (a dry
    run)."""
    started = time.perf_counter()
    result = CatchUp()
    if output.startswith("s3://"):
        if s3 is None:
            raise ValueError("catching up an s3:// output needs an S3 client")
        bucket, prefix = parse_s3_prefix(output)
        parts = [
            (f"s3://{bucket}/{key}", size)
            async for key, size in list_parts(s3, bucket, prefix, shard)
        ]
        tails = uncovered(parts, index.coverage(f"s3://{bucket}/{prefix}"))
    else:
        name, size = await anyio.to_thread.run_sync(_named_size, output)
        tails = uncovered([(name, size)], index.coverage(name))
    pending: list[DurableRecord] = []
    for tail in tails:
        scan = TailScan(tail.output, tail.start)
        async for chunk in _read(s3, tail):
            result.bytes_read += len(chunk)
            pending += await anyio.to_thread.run_sync(scan.feed, chunk)
            if len(pending) >= APPEND_ENTRIES:
                await _append(segment, pending, result)
                pending = []
        mark = scan.finish()
        if mark is not None:
            pending.append(mark)
        result.counts.add(scan.counts)
        result.outputs.append(tail.output)
    await _append(segment, pending, result)
    if segment is not None and result.entries:
        await segment.flush()
    result.seconds = time.perf_counter() - started
    if result.outputs:
        log.warning("%s", result.message())
    return result


async def _append(
    segment: SegmentWriter | None, entries: list[DurableRecord], result: CatchUp
) -> None:
    if entries and segment is not None:
        await segment.append(entries)
    result.entries += entries


def _named_size(path: str) -> tuple[str, int]:
    """The file as the file sink names it in entries, and its size (0: none yet)."""
    name = str(Path(path).absolute())
    try:
        return name, os.stat(name).st_size
    except FileNotFoundError:
        return name, 0


async def _read(s3: Any | None, tail: Tail) -> AsyncIterator[bytes]:
    if tail.output.startswith("s3://"):
        async for chunk in _read_object(s3, tail):
            yield chunk
        return
    fd = await anyio.to_thread.run_sync(os.open, tail.output, os.O_RDONLY | os.O_CLOEXEC)
    try:
        at = tail.start
        while at < tail.stop:
            chunk = await anyio.to_thread.run_sync(
                os.pread, fd, min(CHUNK_BYTES, tail.stop - at), at
            )
            if not chunk:
                return
            at += len(chunk)
            yield chunk
    finally:
        os.close(fd)


def _read_object(s3: Any, tail: Tail) -> AsyncIterator[bytes]:
    """One ranged GET of the object's uncovered bytes, streamed."""
    bucket, _, key = tail.output[5:].partition("/")
    return read_object(s3, bucket, key, start=tail.start, stop=tail.stop)
