"""Output to S3: rolling part files under a prefix, and resuming from them.

``-o s3://bucket/prefix/`` writes ``prefix/part-<run-stamp>-<shard>-<seq>.jsonl``. An S3
object appears whole or not at all, so a part FILE is the unit of durability:

- records are buffered; once the buffer holds ``part_bytes`` (>= 5 MiB, S3's smallest
  part but the last) a multipart upload is started (or continued) with it;
- the part file is completed (CompleteMultipartUpload, or one PutObject when it stayed
  small) after ``part_records`` records or once it is ``part_seconds`` old (checked on
  every write and every ``flush``), and on ``aclose``;
- a kill loses the open part file: at most ``part_records`` records, or
  ``part_seconds`` plus one flush tick of them. Resume redoes them.

A killed run leaves its open multipart upload behind (storage billed, invisible to
listings). The next run's ``load_s3_resume`` aborts the part-file uploads under the
prefix (of its shard) before writing; a bucket lifecycle rule
``AbortIncompleteMultipartUpload`` is the backstop for prefixes never rerun.

Exactly one record per pair: objects cannot be edited, so when resume finds superseded
records it copies the kept records of every affected part into new part files (a fresh
run stamp), completes them, and only then deletes the old objects. A kill between the
two leaves duplicates, never a gap; the next resume drops them the same way. All of
this happens before the run writes anything new.
"""

from __future__ import annotations

import contextlib
import math
import re
import secrets
import time
from bisect import bisect_left
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import anyio

from batchrek.clock import Clock, SystemClock
from batchrek.output.file import check_record
from batchrek.output.resume.scan import CHUNK_BYTES, ResumeState, _keep, _plan, _Scanner

__all__ = [
    "MIN_PART_BYTES",
    "S3Client",
    "S3PartSink",
    "load_s3_resume",
    "new_run_stamp",
    "parse_output_uri",
]

MIN_PART_BYTES = 5 * 1024 * 1024
PART_BYTES = 8 * 1024 * 1024
_CONTENT_TYPE = "application/x-ndjson"
_PART_NAME = re.compile(r"part-([0-9A-Za-z]+)-([0-9A-Za-z]+)-(\d+)\.jsonl")


class S3Client(Protocol):
    """The calls used here; an open aiobotocore S3 client provides them."""

    async def put_object(self, **kwargs: Any) -> Any: ...
    async def create_multipart_upload(self, **kwargs: Any) -> Any: ...
    async def upload_part(self, **kwargs: Any) -> Any: ...
    async def complete_multipart_upload(self, **kwargs: Any) -> Any: ...
    async def abort_multipart_upload(self, **kwargs: Any) -> Any: ...
    async def list_multipart_uploads(self, **kwargs: Any) -> Any: ...
    async def list_objects_v2(self, **kwargs: Any) -> Any: ...
    async def get_object(self, **kwargs: Any) -> Any: ...
    async def delete_objects(self, **kwargs: Any) -> Any: ...


def parse_output_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> ``(bucket, "prefix/")``: the prefix is a folder."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// output: {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"s3 output needs a bucket: {uri!r}")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def new_run_stamp() -> str:
    """UTC time first, so part files sort by run; a random tail keeps runs apart."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + secrets.token_hex(3)


def _shard_label(shard: int | str) -> str:
    label = f"{shard:04d}" if isinstance(shard, int) else shard
    if not re.fullmatch(r"[0-9A-Za-z]+", label):
        raise ValueError(f"a shard label is letters and digits: {shard!r}")
    return label


@dataclass(slots=True)
class _OpenPart:
    key: str
    opened_at: float
    records: int = 0
    bytes: int = 0
    upload_id: str | None = None
    etags: list[str] = field(default_factory=list)


class S3PartSink:
    """Writes records to rolling part files under an S3 prefix (see the module doc)."""

    def __init__(
        self,
        client: S3Client,
        uri: str,
        *,
        shard: int | str = 0,
        part_records: int = 10_000,
        part_seconds: float = 60.0,
        part_bytes: int = PART_BYTES,
        run_stamp: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {MIN_PART_BYTES} (S3's minimum)")
        if part_records < 1 or part_seconds <= 0:
            raise ValueError("part_records and part_seconds must be positive")
        self.bucket, self.prefix = parse_output_uri(uri)
        self.shard = _shard_label(shard)
        self.run_stamp = run_stamp or new_run_stamp()
        self.keys_written: list[str] = []  # completed part files, in order
        self.records_written = 0  # records in completed part files
        self.parts_uploaded = 0  # multipart parts
        self._client = client
        self._part_records = part_records
        self._part_seconds = part_seconds
        self._part_bytes = part_bytes
        self._clock = clock or SystemClock()
        self._seq = 0
        self._open: _OpenPart | None = None
        self._buf = bytearray()
        self._lock = anyio.Lock()
        self._closed = False
        self._failed: BaseException | None = None

    async def write(self, record: bytes) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        if self._failed is not None:
            raise self._failed
        check_record(record)
        part = self._open
        if part is None:
            part = self._open = self._new_part()
        self._buf += record
        part.records += 1
        part.bytes += len(record)
        if (
            len(self._buf) >= self._part_bytes
            or part.records >= self._part_records
            or self._aged(part)
        ):
            async with self._lock:
                await self._progress(close=False)

    def position(self) -> tuple[str, int]:
        """The part object and the offset the next record will start at."""
        part = self._open
        if part is None:
            return f"s3://{self.bucket}/{self._part_key(self._seq)}", 0
        return f"s3://{self.bucket}/{part.key}", part.bytes

    @property
    def durable_records(self) -> int:
        """Records in completed part files, in write order."""
        return self.records_written

    async def flush(self, *, durable: bool = False) -> None:
        """Complete the open part file if it is ``part_seconds`` old.

        A durable flush does no more: completing a young part would make one object
        per flush tick. ``aclose`` completes whatever is open.
        """
        if self._closed or self._failed is not None:
            return
        if self._open is not None and self._aged(self._open):
            async with self._lock:
                await self._progress(close=False)

    async def aclose(self) -> None:
        if self._closed:
            return
        with anyio.CancelScope(shield=True):
            async with self._lock:
                self._closed = True
                if self._failed is None:
                    await self._progress(close=True)

    def _part_key(self, seq: int) -> str:
        return f"{self.prefix}part-{self.run_stamp}-{self.shard}-{seq:06d}.jsonl"

    def _new_part(self) -> _OpenPart:
        key = self._part_key(self._seq)
        self._seq += 1
        return _OpenPart(key=key, opened_at=self._clock.monotonic())

    def _aged(self, part: _OpenPart) -> bool:
        return self._clock.monotonic() - part.opened_at >= self._part_seconds

    async def _progress(self, *, close: bool) -> None:
        """Under the lock. State is detached before each await, so records written
        meanwhile land in the right buffer. Shielded: a cancelled run (SIGTERM) still
        finishes an upload it started rather than lose the part file."""
        part = self._open
        if part is None:
            return
        try:
            with anyio.CancelScope(shield=True):
                if len(self._buf) >= self._part_bytes:
                    await self._upload_part(part)
                if close or part.records >= self._part_records or self._aged(part):
                    await self._complete(part)
        except BaseException as exc:
            self._failed = exc
            self._open = None
            await self._abort(part)
            raise

    async def _upload_part(self, part: _OpenPart) -> None:
        data = bytes(self._buf)
        self._buf = bytearray()
        if part.upload_id is None:
            created = await self._client.create_multipart_upload(
                Bucket=self.bucket, Key=part.key, ContentType=_CONTENT_TYPE
            )
            part.upload_id = created["UploadId"]
        await self._send_part(part, data)

    async def _send_part(self, part: _OpenPart, data: bytes) -> None:
        number = len(part.etags) + 1
        sent = await self._client.upload_part(
            Bucket=self.bucket, Key=part.key, UploadId=part.upload_id, PartNumber=number, Body=data
        )
        part.etags.append(sent["ETag"])
        self.parts_uploaded += 1

    async def _complete(self, part: _OpenPart) -> None:
        self._open = None
        data = bytes(self._buf)
        self._buf = bytearray()
        if part.upload_id is None:
            await self._client.put_object(
                Bucket=self.bucket, Key=part.key, Body=data, ContentType=_CONTENT_TYPE
            )
        else:
            if data:
                await self._send_part(part, data)
            parts = [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(part.etags, 1)]
            await self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=part.key,
                UploadId=part.upload_id,
                MultipartUpload={"Parts": parts},
            )
        self.keys_written.append(part.key)
        self.records_written += part.records

    async def _abort(self, part: _OpenPart) -> None:
        if part.upload_id is None:
            return
        with anyio.CancelScope(shield=True):
            # Best effort: the next resume aborts whatever is left.
            with contextlib.suppress(Exception):
                await self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=part.key, UploadId=part.upload_id
                )

    def __repr__(self) -> str:
        open_records = self._open.records if self._open else 0
        return (
            f"S3PartSink('s3://{self.bucket}/{self.prefix}', shard={self.shard!r}, "
            f"parts={len(self.keys_written)}, records={self.records_written}, "
            f"open={open_records})"
        )


# -- resume ------------------------------------------------------------------------


async def load_s3_resume(
    client: S3Client,
    uri: str,
    *,
    shard: int | str | None = None,
    retry_failed: bool = False,
    compact: bool = True,
) -> ResumeState:
    """``load_resume`` for part files: list, stream each object through the scanner,
    then abort stale uploads and compact (see the module doc). ``shard=None`` reads
    every part file under the prefix and assumes one writer."""
    bucket, prefix = parse_output_uri(uri)
    label = None if shard is None else _shard_label(shard)
    aborted = await _abort_stale_uploads(client, bucket, prefix, label) if compact else 0
    keys = sorted([key async for key in _list_parts(client, bucket, prefix, label)])
    scan = _Scanner(retry_failed=retry_failed)
    torn: list[int] = []
    for key in keys:
        async for chunk in _read_object(client, bucket, key):
            await anyio.to_thread.run_sync(scan.feed, chunk)
        torn.append(scan.end_segment())
    ends = scan.segment_ends
    plan = await anyio.to_thread.run_sync(_plan, scan)
    del scan
    state = replace(plan.state, stale_uploads_aborted=aborted)
    dropped = plan.dropped
    starts = [0, *ends[:-1]]
    affected = [
        i
        for i in range(len(keys))
        if torn[i] or bisect_left(dropped, starts[i]) != bisect_left(dropped, ends[i])
    ]
    if not compact or not affected:
        return state
    stamp = new_run_stamp()
    sinks: dict[str, S3PartSink] = {}
    for i in affected:
        match = _PART_NAME.fullmatch(keys[i][len(prefix) :])
        assert match is not None  # _list_parts only yields part names
        label_i = match[2]
        sink = sinks.get(label_i)
        if sink is None:
            sink = sinks[label_i] = S3PartSink(
                client, uri, shard=label_i, run_stamp=stamp, part_seconds=math.inf
            )
        first, tail = starts[i], b""
        async for chunk in _read_object(client, bucket, keys[i]):
            data = tail + chunk if tail else chunk
            cut = data.rfind(b"\n") + 1
            tail, whole = data[cut:], data[:cut]  # a torn tail is left behind
            for line in _keep(whole, first, dropped).splitlines(keepends=True):
                await sink.write(line)
            first += whole.count(b"\n")
    for sink in sinks.values():
        await sink.aclose()
    await _delete(client, bucket, [keys[i] for i in affected])
    return replace(state, compacted=True, objects_rewritten=len(affected))


async def _list_parts(
    client: S3Client, bucket: str, prefix: str, label: str | None
) -> AsyncIterator[str]:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = await client.list_objects_v2(**kwargs)
        for entry in page.get("Contents", ()):
            if _is_part(entry["Key"][len(prefix) :], label):
                yield entry["Key"]
        if not page.get("IsTruncated"):
            return
        kwargs["ContinuationToken"] = page["NextContinuationToken"]


def _is_part(name: str, label: str | None) -> bool:
    match = _PART_NAME.fullmatch(name)
    return match is not None and (label is None or match[2] == label)


async def _read_object(client: S3Client, bucket: str, key: str) -> AsyncIterator[bytes]:
    """Stream an object in chunks of about ``CHUNK_BYTES``: one thread hop each."""
    response = await client.get_object(Bucket=bucket, Key=key)
    body = response["Body"]
    try:
        buf = bytearray()
        while chunk := await body.read(1024 * 1024):
            buf += chunk
            if len(buf) >= CHUNK_BYTES:
                yield bytes(buf)
                buf = bytearray()
        if buf:
            yield bytes(buf)
    finally:
        body.close()


async def _abort_stale_uploads(
    client: S3Client, bucket: str, prefix: str, label: str | None
) -> int:
    """Abort part-file uploads a killed run left open. Runs before this run uploads
    anything, so with one writer per shard every upload found is stale."""
    aborted = 0
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = await client.list_multipart_uploads(**kwargs)
        for upload in page.get("Uploads", ()):
            if _is_part(upload["Key"][len(prefix) :], label):
                await client.abort_multipart_upload(
                    Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                aborted += 1
        if not page.get("IsTruncated"):
            return aborted
        kwargs["KeyMarker"] = page.get("NextKeyMarker")
        kwargs["UploadIdMarker"] = page.get("NextUploadIdMarker")


async def _delete(client: S3Client, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        result = await client.delete_objects(
            Bucket=bucket, Delete={"Objects": batch, "Quiet": True}
        )
        if result.get("Errors"):
            first = result["Errors"][0]
            raise OSError(f"deleting superseded part {first.get('Key')}: {first.get('Message')}")
