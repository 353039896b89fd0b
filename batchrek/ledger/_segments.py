"""Where segments live and how they are written: a local directory or an S3 prefix.

A segment is two files named alike: ``<name>.entries`` (32-byte entries, appended)
and ``<name>.outputs`` (the outputs its entries point into, one URI a line).
``<name>`` is ``seg-<run stamp>-<shard>-<seq>``: the run stamp first (``_stamp``: UTC
time, never before the newest segment the run loaded), so names sort by age, and one
writer per (run, shard), so shards running at once never share a file and a new night
never rewrites an old segment. The union of all segments is the
ledger.

Order of durability (what makes a kill at any moment safe):

1. the record is durable in the output (the sink's fsync, or its part file complete);
2. the output's name is durable in ``.outputs`` (before any entry naming it);
3. only then the entry is appended to ``.entries``.

A kill between any two steps leaves an entry missing (that pair is analysed again
next time), never an entry pointing at nothing. A kill inside step 3 leaves a torn
entry, which the loader cuts off.

- Local: one segment per run and shard, appended and fsynced on each commit (about
  once a second) on one thread of its own.
- S3: objects cannot be appended to, so a segment is a series of chunk objects
  (``seq`` counts them), each written whole (outputs first, then entries) once it
  holds ``chunk_entries`` entries or is ``chunk_seconds`` old, and on close. A kill
  loses the open chunk's entries: those pairs are analysed again next time.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import anyio

from batchrek.clock import Clock, SystemClock
from batchrek.ledger._entry import pack_entry
from batchrek.ledger._index import Segment, parse_outputs
from batchrek.ledger._stamp import new_segment_name
from batchrek.safefile import fsync_dir, write_all
from batchrek.stamps import new_stamp

__all__ = [
    "DurableRecord",
    "LocalSegmentWriter",
    "S3SegmentWriter",
    "SegmentWriter",
    "as_segment",
    "load_local_segments",
    "load_s3_segments",
    "new_segment_name",
    "parse_ledger_uri",
]

ENTRIES, OUTPUTS = ".entries", ".outputs"


class DurableRecord(NamedTuple):
    """A record now durable in its output, with the keys its entry carries."""

    id_key: int
    content_key: int
    output: str
    offset: int
    length: int


class SegmentWriter(Protocol):
    async def append(self, records: Sequence[DurableRecord]) -> None: ...
    async def flush(self) -> None:
        """Make every entry appended so far durable now (an S3 chunk is written)."""

    async def aclose(self) -> None: ...


def parse_ledger_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> ``(bucket, "prefix/")``."""
    bucket, _, prefix = uri[5:].partition("/")
    if not uri.startswith("s3://") or not bucket:
        raise ValueError(f"not an s3://bucket/prefix/ ledger: {uri!r}")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


class _Outputs:
    """A segment's output table: URI -> local index, growing as outputs appear."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def new_names(self, records: Sequence[DurableRecord]) -> list[str]:
        fresh: list[str] = []
        for record in records:
            if record.output not in self.index:
                self.index[record.output] = len(self.index)
                fresh.append(record.output)
        return fresh

    def pack(self, records: Sequence[DurableRecord]) -> bytes:
        index = self.index
        return b"".join(
            pack_entry(r.id_key, r.content_key, index[r.output], r.offset, r.length)
            for r in records
        )


def as_segment(name: str, records: Sequence[DurableRecord]) -> Segment:
    """Entries as a segment held in memory, laid out as a writer lays them on disk."""
    table = _Outputs()
    return Segment(name, table.new_names(records), table.pack(records))


def _lines(names: Sequence[str]) -> bytes:
    for name in names:
        if "\n" in name:
            raise ValueError(f"an output name cannot hold a newline: {name!r}")
    return "".join(f"{n}\n" for n in names).encode("utf-8", "surrogateescape")


# -- local ---------------------------------------------------------------------------


class LocalSegmentWriter:
    """Appends this run's entries to ``<dir>/<name>.entries`` (see the module doc)."""

    def __init__(self, directory: str | os.PathLike[str], name: str) -> None:
        self.directory = Path(directory)
        self.name = name
        self.entries_written = 0
        self._outputs = _Outputs()
        self._fds: tuple[int, int] | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="batchrek-ledger")
        self._lock = anyio.Lock()
        self._closed = False

    async def append(self, records: Sequence[DurableRecord]) -> None:
        if not records:
            return
        if self._closed:
            raise anyio.ClosedResourceError
        async with self._lock:
            fresh = self._outputs.new_names(records)
            data = self._outputs.pack(records)
            loop = asyncio.get_running_loop()
            # Shielded: a cancelled run still lands entries for records it made durable.
            with anyio.CancelScope(shield=True):
                await loop.run_in_executor(self._thread, self._write, _lines(fresh), data)
            self.entries_written += len(records)

    async def flush(self) -> None:
        """Nothing to do: every ``append`` is fsynced before it returns."""

    def _write(self, outputs: bytes, entries: bytes) -> None:
        if self._fds is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
            out_fd = os.open(self.directory / (self.name + OUTPUTS), flags, 0o644)
            ent_fd = os.open(self.directory / (self.name + ENTRIES), flags, 0o644)
            self._fds = (out_fd, ent_fd)
            fsync_dir(str(self.directory))
        out_fd, ent_fd = self._fds
        if outputs:
            write_all(out_fd, outputs)
            os.fsync(out_fd)
        write_all(ent_fd, entries)
        os.fsync(ent_fd)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            async with self._lock:
                self._thread.shutdown(wait=True)
                if self._fds is not None:
                    for fd in self._fds:
                        os.close(fd)
                    self._fds = None

    def __repr__(self) -> str:
        where = str(self.directory / self.name)
        return f"LocalSegmentWriter({where!r}, entries={self.entries_written})"


def _read_local(directory: Path) -> list[Segment]:
    segments = []
    for entries in sorted(directory.glob("seg-*" + ENTRIES)):
        base = entries.name[: -len(ENTRIES)]
        outputs_path = directory / (base + OUTPUTS)
        outputs = parse_outputs(outputs_path.read_bytes()) if outputs_path.exists() else []
        segments.append(Segment(base, outputs, entries.read_bytes()))
    return segments


async def load_local_segments(directory: str | os.PathLike[str]) -> list[Segment]:
    """Every segment in the directory (none if it does not exist yet)."""
    return await anyio.to_thread.run_sync(_read_local, Path(directory))


# -- S3 ------------------------------------------------------------------------------


class S3SegmentWriter:
    """Writes this run's entries as whole chunk objects (see the module doc)."""

    def __init__(
        self,
        client: Any,
        uri: str,
        *,
        shard: int,
        chunk_entries: int = 250_000,
        chunk_seconds: float = 300.0,
        stamp: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.bucket, self.prefix = parse_ledger_uri(uri)
        self.shard = shard
        self.chunks_written = 0
        self.entries_written = 0
        self._client = client
        self._chunk_entries = chunk_entries
        self._chunk_seconds = chunk_seconds
        self._stamp = stamp or new_stamp()
        self._clock = clock or SystemClock()
        self._pending: list[DurableRecord] = []
        self._opened_at: float | None = None
        self._lock = anyio.Lock()
        self._closed = False

    async def append(self, records: Sequence[DurableRecord]) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        if records:
            if self._opened_at is None:
                self._opened_at = self._clock.monotonic()
            self._pending.extend(records)
        aged = (
            self._opened_at is not None
            and self._clock.monotonic() - self._opened_at >= self._chunk_seconds
        )
        if len(self._pending) >= self._chunk_entries or (aged and self._pending):
            await self._put_chunk()

    async def flush(self) -> None:
        """Write the open chunk now, however young (the ledger catch-up's entries
        must be durable before the run bills anything)."""
        if self._closed:
            raise anyio.ClosedResourceError
        await self._put_chunk()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            await self._put_chunk()

    async def _put_chunk(self) -> None:
        async with self._lock:
            records, self._pending, self._opened_at = self._pending, [], None
            if not records:
                return
            name = new_segment_name(self.shard, self.chunks_written, stamp=self._stamp)
            table = _Outputs()
            names = table.new_names(records)
            with anyio.CancelScope(shield=True):
                await self._client.put_object(
                    Bucket=self.bucket, Key=self.prefix + name + OUTPUTS, Body=_lines(names)
                )
                await self._client.put_object(
                    Bucket=self.bucket, Key=self.prefix + name + ENTRIES, Body=table.pack(records)
                )
            self.chunks_written += 1
            self.entries_written += len(records)

    def __repr__(self) -> str:
        return (
            f"S3SegmentWriter('s3://{self.bucket}/{self.prefix}', shard={self.shard}, "
            f"chunks={self.chunks_written}, pending={len(self._pending)})"
        )


async def _get(client: Any, bucket: str, key: str) -> bytes | None:
    try:
        response = await client.get_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if _is_missing(exc):
            return None
        raise
    body = response["Body"]
    try:
        return bytes(await body.read())
    finally:
        body.close()


def _is_missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("NoSuchKey", "404")


async def load_s3_segments(client: Any, uri: str, *, parallel: int = 16) -> list[Segment]:
    """Every chunk under the prefix, fetched ``parallel`` at a time."""
    bucket, prefix = parse_ledger_uri(uri)
    names: list[str] = []
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix + "seg-"}
    while True:
        page = await client.list_objects_v2(**kwargs)
        for entry in page.get("Contents", ()):
            key: str = entry["Key"]
            if key.endswith(ENTRIES):
                names.append(key[len(prefix) : -len(ENTRIES)])
        if not page.get("IsTruncated"):
            break
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
    segments: list[Segment] = []
    limiter = anyio.Semaphore(parallel)

    async def fetch(name: str) -> None:
        async with limiter:
            entries = await _get(client, bucket, prefix + name + ENTRIES)
            outputs = await _get(client, bucket, prefix + name + OUTPUTS)
        if entries is not None:
            segments.append(Segment(name, parse_outputs(outputs or b""), entries))

    async with anyio.create_task_group() as tg:
        for name in names:
            tg.start_soon(fetch, name)
    return segments
