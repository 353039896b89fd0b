"""Opening the ledger for a run: load the union of segments, start this run's own.

``--ledger PATH`` is a local directory; ``--ledger s3://bucket/prefix/`` an S3 prefix.
Every shard loads every segment (the union) and writes only its own, so shards that
run at once never write the same object. Given the run's output, what it holds past
the ledger's coverage (a killed run's last records) is indexed first (``_catchup``),
and the index rebuilt with those entries, before any verdict.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from batchrek.call import Operation
from batchrek.ledger._catchup import CatchUp, catch_up
from batchrek.ledger._gate import Ledger
from batchrek.ledger._index import LedgerIndex, Segment
from batchrek.ledger._records import RecordReader
from batchrek.ledger._segments import (
    LocalSegmentWriter,
    S3SegmentWriter,
    SegmentWriter,
    as_segment,
    load_local_segments,
    load_s3_segments,
)
from batchrek.ledger._stamp import new_segment_name, newest_stamp
from batchrek.stamps import alnum_stamp, new_stamp

__all__ = ["LedgerRun", "load_index", "open_ledger", "repair_torn_tail"]

log = logging.getLogger("batchrek")


@dataclass
class LedgerRun:
    ledger: Ledger
    segment: SegmentWriter
    load_s: float
    # This run's stamp: after every segment loaded (``_stamp``). An S3 output's part
    # files take it too (``part_stamp``), so tonight's parts sort after last night's
    # even on a pod whose clock is behind (the export reads them in name order).
    stamp: str

    @property
    def part_stamp(self) -> str:
        """The stamp in a part file's alphabet (letters and digits)."""
        return alnum_stamp(self.stamp)


# Sorts after every "seg-..." name: the catch-up's entries are newer than all loaded.
_CAUGHT_UP = "~caught-up"


async def _load_segments(uri: str, s3: Any | None) -> list[Segment]:
    if uri.startswith("s3://"):
        if s3 is None:
            raise ValueError("an s3:// ledger needs an S3 client")
        return await load_s3_segments(s3, uri)
    return await load_local_segments(uri)


async def load_index(uri: str, *, s3: Any | None) -> LedgerIndex:
    segments = await _load_segments(uri, s3)
    return await anyio.to_thread.run_sync(LedgerIndex.build, segments)


async def open_ledger(
    uri: str,
    *,
    s3: Any | None,
    ops: Sequence[Operation],
    shard: int,
    output: str | None = None,
    write: bool = True,
) -> LedgerRun:
    """Load the ledger and start this run's segment. With ``output``, catch up first:
    index what the output holds past the ledger's coverage; the entries are durable
    in this run's segment on return (``write=False``, a dry run: in memory only)."""
    started = time.perf_counter()
    segments = await _load_segments(uri, s3)
    index = await anyio.to_thread.run_sync(LedgerIndex.build, segments)
    load_s = time.perf_counter() - started
    # After every segment loaded, whatever this machine's clock says (see ``_stamp``).
    stamp = new_stamp(newest_stamp(s.name for s in segments))
    segment: SegmentWriter
    if uri.startswith("s3://"):
        segment = S3SegmentWriter(s3, uri, shard=shard, stamp=stamp)
    else:
        segment = LocalSegmentWriter(uri, new_segment_name(shard, stamp=stamp))
    caught = CatchUp()
    if output is not None:
        try:
            caught = await catch_up(index, output, segment if write else None, s3=s3, shard=shard)
        except Exception as exc:  # what a kill left is billed again, as before catch-up
            log.warning(
                "ledger: cannot read back %s to index what a stopped run left out of the "
                "ledger (%s: %s): those pairs, if any, are analysed again",
                output,
                type(exc).__name__,
                exc,
            )
        if caught.entries:  # after a kill only: the verdicts must know these entries
            segments.append(as_segment(_CAUGHT_UP, caught.entries))
            index = await anyio.to_thread.run_sync(LedgerIndex.build, segments)
        caught.entries = []
    del segments
    ledger = Ledger(index, ops, RecordReader(s3))
    ledger.caught_up = caught
    return LedgerRun(ledger, segment, load_s, stamp)


def repair_torn_tail(path: str) -> int:
    """Cut an unterminated last line off a local output (a kill mid-write), so the
    next record starts on a line of its own and its ledger offset is exact.
    Returns the bytes cut. Reads backwards from the end, never the whole file."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    try:
        size = os.fstat(fd).st_size
        end = size
        while end > 0:
            start = max(0, end - 65536)
            chunk = os.pread(fd, end - start, start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                end = start + cut + 1
                break
            end = start
        if end != size:
            os.ftruncate(fd, end)
            os.fsync(fd)
        return size - end
    finally:
        os.close(fd)
