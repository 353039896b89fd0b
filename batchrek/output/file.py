"""Where records go: the ``Sink`` seam and the local JSON Lines file.

Exactly one writer owns the output. The pipeline sends it results through a bounded
stream; it serialises each to one line and calls ``write``. Records are buffered and
handed to the OS in batches (one thread hop per ``batch_bytes``, never one per record),
and every batch is whole lines, so the file only ever ends in a partial line when the
process dies inside a ``write(2)``; resume cuts that line off.

What survives, for ``JsonlFileSink``:

- a kill (SIGKILL, OOM): every record in a batch already handed to the OS, i.e. all but
  at most ``batch_bytes`` (64 KiB, a few hundred records) written since the last
  ``flush()``;
- a node crash or power loss: every record written before the last
  ``flush(durable=True)`` (fsync). The pipeline calls it about once a second, so a
  crash loses at most about a second of records; resume redoes them;
- a write that fails (disk full, file too large, I/O error, permission): the whole
  records the OS took stay, a half record after them is cut off (the file ends in
  whole records), and the sink raises ``OutputFailed`` from then on, so the run stops
  billing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

import anyio

from batchrek.errors import OutputFailed

__all__ = ["JsonlFileSink", "Sink", "check_record"]

BATCH_BYTES = 64 * 1024
# A batch this small is written on the event loop once the file is open: write(2) of a
# few KB into the page cache takes microseconds, where the hop to the writer thread
# costs ~165 us of CPU (a GIL hand-off each way), and at low rates the writer hops once
# per record. Opening, fsync and big batches still hop, and so does every batch after
# one inline write that took longer than SLOW_WRITE_S (a saturated disk, a network
# file system): the event loop is never held up twice.
INLINE_BYTES = 16 * 1024
SLOW_WRITE_S = 0.005


class Sink(Protocol):
    """The one writer of a run's output."""

    async def write(self, record: bytes) -> None:
        """Take one complete JSON line, ending in ``\\n``. May buffer."""

    async def flush(self, *, durable: bool = False) -> None:
        """Push buffered records on; ``durable=True`` is the periodic durability point
        (a file is fsynced; an S3 part file is completed once it is old enough)."""

    async def aclose(self) -> None:
        """Everything written is durable when this returns. Idempotent."""


def check_record(record: bytes) -> None:
    """A record is exactly one line: a stray newline would split it in the output."""
    if len(record) < 2 or record.find(b"\n") != len(record) - 1:
        raise ValueError("a record must be one JSON line ending in a single newline")


class JsonlFileSink:
    """Appends records to a local JSON Lines file.

    The file is opened on the first batch (in the worker thread that writes it), so
    constructing the sink never touches the disk. ``truncate=True`` starts the file
    afresh instead of appending (a run without resume).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        truncate: bool = False,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        if batch_bytes <= 0:
            raise ValueError("batch_bytes must be positive")
        self.path = Path(path)
        self.records_written = 0  # handed to the OS
        self.bytes_written = 0
        self.batches = 0
        self.fsyncs = 0
        self._truncate = truncate
        # Where records land, for the ledger: the size the file starts at, plus
        # every record accepted since (written in order, never reordered).
        self._origin = str(self.path.absolute())
        self._start = 0 if truncate or not self.path.exists() else self.path.stat().st_size
        self._accepted = 0
        self._durable_records = 0
        self._batch_bytes = batch_bytes
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._fd: int | None = None
        self._size = 0
        self._unsynced = False  # written since the last fsync
        self._closed = False
        self._failed: OutputFailed | None = None
        self._lock = anyio.Lock()
        self._inline = True  # small batches written on the loop (see INLINE_BYTES)
        # One thread of our own: batches land in order, and a hop costs ~165 us of
        # process CPU where anyio.to_thread costs ~400 us. Small batches skip it
        # (INLINE_BYTES): at low rates the writer hands each record to the OS as soon
        # as none wait, so it would hop once per record.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="batchrek-write")

    async def write(self, record: bytes) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        if self._failed is not None:
            raise self._failed
        check_record(record)
        self._buffer.append(record)
        self._buffered += len(record)
        self._accepted += len(record)
        if self._buffered >= self._batch_bytes:
            await self._drain(durable=False)

    async def flush(self, *, durable: bool = False) -> None:
        if self._closed:
            return
        await self._drain(durable=durable)

    def position(self) -> tuple[str, int]:
        """The file and the offset the next record will start at."""
        return self._origin, self._start + self._accepted

    @property
    def durable_records(self) -> int:
        """Records fsynced so far (they survive a crash), in write order."""
        return self._durable_records

    async def aclose(self) -> None:
        """Lands what is buffered and fsyncs. After a failure (already raised to the
        writer) it only closes: those records cannot be written."""
        if self._closed:
            return
        # A cancelled run (SIGTERM) must still land what it has: shield the last hop.
        with anyio.CancelScope(shield=True):
            try:
                if self._failed is None:
                    await self._drain(durable=True)
            finally:
                self._closed = True
                self._thread.shutdown(wait=True)  # a hop abandoned by a cancel lands
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _drain(self, *, durable: bool) -> None:
        if self._failed is not None:
            raise self._failed
        async with self._lock:  # batches reach the file in the order they were taken
            # Taken under the lock, so a cancelled wait for it loses nothing; writes
            # arriving during the hop start the next batch.
            batch, count = b"".join(self._buffer), len(self._buffer)
            self._buffer, self._buffered = [], 0
            if not batch and not (durable and self._unsynced):
                return
            small = len(batch) <= INLINE_BYTES
            if self._inline and small and not durable and self._fd is not None:
                started = time.perf_counter()
                self._write_batch(batch, count, durable)
                if time.perf_counter() - started > SLOW_WRITE_S:
                    self._inline = False
                return
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._thread, self._write_batch, batch, count, durable)

    def _write_batch(self, batch: bytes, count: int, durable: bool) -> None:
        """Worker thread: append the batch whole, or roll the file back to before it.
        Any ``OSError`` fails the sink for good (``OutputFailed``)."""
        try:
            self._write_batch_os(batch, count, durable)
        except OSError as exc:
            self._failed = OutputFailed(str(self.path), exc)
            raise self._failed from exc

    def _write_batch_os(self, batch: bytes, count: int, durable: bool) -> None:
        if self._fd is None:
            self._fd = self._open()
        fd = self._fd
        if batch:
            written = 0
            try:
                while written < len(batch):
                    written += os.write(fd, memoryview(batch)[written:])
            except OSError:
                # Disk full, file too large, I/O error: keep the whole records the OS
                # took (they are billed results) and cut the half record after them.
                kept = batch.rfind(b"\n", 0, written) + 1
                with contextlib.suppress(OSError):  # if even this fails, resume cuts it
                    os.ftruncate(fd, self._size + kept)
                    self._note_written(kept, batch[:kept].count(b"\n"))
                raise
            self._note_written(len(batch), count)
        if durable and self._unsynced:
            os.fsync(fd)
            self.fsyncs += 1
            self._unsynced = False
        if durable:
            self._durable_records = self.records_written

    def _note_written(self, nbytes: int, records: int) -> None:
        self._size += nbytes
        self.bytes_written += nbytes
        self.records_written += records
        self.batches += 1
        self._unsynced = True

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        if self._truncate:
            flags |= os.O_TRUNC
        fd = os.open(self.path, flags, 0o644)
        self._size = os.fstat(fd).st_size
        if created:  # the new directory entry must survive a crash too
            dfd = os.open(self.path.parent, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        return fd

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"buffered={self._buffered}"
        return (
            f"JsonlFileSink({str(self.path)!r}, records={self.records_written}, "
            f"fsyncs={self.fsyncs}, {state})"
        )
