"""Reading an earlier record back through a ledger pointer, to reuse its result.

A local output is read with one ``pread``, an S3 part file with one ranged GET: never
the whole output. The record read must be the one the entry was made for - same
operation, parameters digest and content identity, status ok - or it is not used: an
output compacted, rewritten or deleted since, or a 64-bit key collision, costs one
analysis, never a wrong result.
"""

from __future__ import annotations

import os
from typing import Any

import anyio
import orjson

from batchrek.ledger._index import Pointer

__all__ = ["RecordReader"]


class RecordReader:
    def __init__(self, s3: Any | None) -> None:
        self._s3 = s3
        self.reads = 0
        self.bytes_read = 0
        self.failed = 0

    async def read(self, pointer: Pointer) -> dict[str, Any] | None:
        """The record at ``pointer`` parsed, or None if it cannot be read as one."""
        try:
            if pointer.output.startswith("s3://"):
                raw = await self._ranged_get(pointer)
            else:
                raw = await anyio.to_thread.run_sync(_pread, pointer)
        except Exception:  # gone, forbidden, unreachable: the pair is analysed instead
            self.failed += 1
            return None
        self.reads += 1
        self.bytes_read += len(raw)
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.failed += 1
            return None
        return record if isinstance(record, dict) else None

    async def _ranged_get(self, pointer: Pointer) -> bytes:
        if self._s3 is None:
            raise RuntimeError("no S3 client to read an s3:// output")
        bucket, _, key = pointer.output[5:].partition("/")
        end = pointer.offset + pointer.length - 1
        response = await self._s3.get_object(
            Bucket=bucket, Key=key, Range=f"bytes={pointer.offset}-{end}"
        )
        body = response["Body"]
        try:
            return bytes(await body.read())
        finally:
            body.close()

    def __repr__(self) -> str:
        return f"RecordReader(reads={self.reads}, bytes={self.bytes_read}, failed={self.failed})"


def _pread(pointer: Pointer) -> bytes:
    fd = os.open(pointer.output, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.pread(fd, pointer.length, pointer.offset)
    finally:
        os.close(fd)
