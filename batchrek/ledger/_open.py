"""Opening the ledger for a run: load the union of segments, start this run's own.

``--ledger PATH`` is a local directory; ``--ledger s3://bucket/prefix/`` an S3 prefix.
Every shard loads every segment (the union) and writes only its own, so shards that
run at once never write the same object.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from batchrek.call import Operation
from batchrek.ledger._gate import Ledger
from batchrek.ledger._index import LedgerIndex
from batchrek.ledger._records import RecordReader
from batchrek.ledger._segments import (
    LocalSegmentWriter,
    S3SegmentWriter,
    SegmentWriter,
    load_local_segments,
    load_s3_segments,
    new_segment_name,
)

__all__ = ["LedgerRun", "load_index", "open_ledger", "repair_torn_tail"]


@dataclass
class LedgerRun:
    ledger: Ledger
    segment: SegmentWriter
    load_s: float


async def load_index(uri: str, *, s3: Any | None) -> LedgerIndex:
    if uri.startswith("s3://"):
        if s3 is None:
            raise ValueError("an s3:// ledger needs an S3 client")
        segments = await load_s3_segments(s3, uri)
    else:
        segments = await load_local_segments(uri)
    return await anyio.to_thread.run_sync(LedgerIndex.build, segments)


async def open_ledger(
    uri: str, *, s3: Any | None, ops: Sequence[Operation], shard: int
) -> LedgerRun:
    started = time.perf_counter()
    index = await load_index(uri, s3=s3)
    load_s = time.perf_counter() - started
    segment: SegmentWriter
    if uri.startswith("s3://"):
        segment = S3SegmentWriter(s3, uri, shard=shard)
    else:
        segment = LocalSegmentWriter(uri, new_segment_name(shard))
    return LedgerRun(Ledger(index, ops, RecordReader(s3)), segment, load_s)


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
