"""The ledger's side of the writer: entries only for records already durable.

``LedgerSink`` wraps the run's one sink. Each record goes through unchanged; the
ones that carry ledger keys are remembered with where they landed (output, offset,
length). After every flush, and at close, the sink says how many records are durable
(fsynced, or in a completed S3 part file) and the entries of those records go to this
run's segment. So the ledger can lag the output by a flush (a kill then costs those
pairs a second analysis) but never claims a record that is not there.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple, Protocol

from batchrek.ledger._segments import DurableRecord, SegmentWriter

__all__ = ["LedgerKeys", "LedgerSink", "PositionedSink"]


class LedgerKeys(NamedTuple):
    id_key: int
    content_key: int


class PositionedSink(Protocol):
    """A sink that says where the next record lands and how many are durable."""

    async def write(self, record: bytes) -> None: ...
    async def flush(self, *, durable: bool = False) -> None: ...
    async def aclose(self) -> None: ...
    def position(self) -> tuple[str, int]: ...
    @property
    def durable_records(self) -> int: ...


class LedgerSink:
    def __init__(self, sink: PositionedSink, segment: SegmentWriter) -> None:
        self.sink = sink
        self.segment = segment
        self.committed = 0  # entries handed to the segment
        self._written = 0  # records through write(), in order
        self._pending: deque[tuple[int, DurableRecord]] = deque()

    async def write(self, record: bytes, keys: LedgerKeys | None = None) -> None:
        output, offset = self.sink.position()
        await self.sink.write(record)
        seq = self._written
        self._written += 1
        if keys is not None:
            entry = DurableRecord(keys.id_key, keys.content_key, output, offset, len(record))
            self._pending.append((seq, entry))

    async def flush(self, *, durable: bool = False) -> None:
        await self.sink.flush(durable=durable)
        await self._commit()

    async def aclose(self) -> None:
        try:
            await self.sink.aclose()
            await self._commit()
        finally:
            await self.segment.aclose()

    async def _commit(self) -> None:
        durable = self.sink.durable_records
        pending = self._pending
        ready: list[DurableRecord] = []
        while pending and pending[0][0] < durable:
            ready.append(pending.popleft()[1])
        if ready:
            await self.segment.append(ready)
            self.committed += len(ready)
        else:
            await self.segment.append(())  # lets an S3 segment complete an aged chunk

    @property
    def pending(self) -> int:
        return len(self._pending)

    def __repr__(self) -> str:
        return (
            f"LedgerSink(written={self._written}, pending={len(self._pending)}, "
            f"committed={self.committed})"
        )
