"""Output to S3: rolling part files under a prefix.

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
listings). The next run's resume (``batchrek.output.resume.s3``) aborts the part-file
uploads under the prefix (of its shard) before writing, and compacts superseded
records into new part files; a ledger run, which never loads the resume, aborts its
shard's (``abort_stale_uploads``); a bucket lifecycle rule ``AbortIncompleteMultipartUpload``
is the backstop for prefixes never rerun.

Every S3 call goes through the injected ``retry`` (the run gives
``call.TransientRetry``): SlowDown, 5xx and connection errors are retried with
back-off behind the S3 endpoint's circuit breaker. With a ``spool`` (the run always
gives one, see ``output.spool``) each record is also written to a local file for
its part, deleted once the part is completed, so a kill loses only the calls in
flight; and a part that still cannot be uploaded does not fail the writer: the sink
"stalls", keeps every further record in the spool only, makes no more S3 calls, and
reports ``on_stall(error, where)`` once, so the run stops billing and says so. The
next run uploads the spool first (``output.recover``). Without a spool a failed
upload fails the sink (its error is raised by every later write).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import anyio

from batchrek.clock import Clock, SystemClock
from batchrek.errors import OutputFailed
from batchrek.output.file import check_record
from batchrek.output.spool import Spool, SpoolFile
from batchrek.retrying import Retrier, once
from batchrek.s3uri import parse_s3_prefix
from batchrek.stamps import alnum_stamp, new_stamp

__all__ = [
    "MIN_PART_BYTES",
    "PART_BYTES",
    "S3Client",
    "S3PartSink",
    "new_run_stamp",
    "part_shard",
    "shard_label",
]

log = logging.getLogger("batchrek")

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
    async def head_object(self, **kwargs: Any) -> Any: ...


def new_run_stamp() -> str:
    """A run stamp (``batchrek.stamps``: UTC time to the microsecond first, so part
    files sort by run; a random tail keeps runs apart) in letters and digits only, as
    part names are matched by ``[0-9A-Za-z]+``."""
    return alnum_stamp(new_stamp())


def shard_label(shard: int | str) -> str:
    """The shard as it appears in a part file name: ``3`` -> ``"0003"``."""
    label = f"{shard:04d}" if isinstance(shard, int) else shard
    if not re.fullmatch(r"[0-9A-Za-z]+", label):
        raise ValueError(f"a shard label is letters and digits: {shard!r}")
    return label


def part_shard(name: str) -> str | None:
    """The shard label of a part file name (relative to the prefix), or ``None`` when
    the name is not one this sink writes."""
    match = _PART_NAME.fullmatch(name)
    return None if match is None else match[2]


@dataclass(slots=True)
class _OpenPart:
    key: str
    opened_at: float
    records: int = 0
    bytes: int = 0
    upload_id: str | None = None
    etags: list[str] = field(default_factory=list)
    spooled: SpoolFile | None = None


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
        retry: Retrier = once,
        endpoint: str | None = None,
        spool: Spool | None = None,
        on_stall: Callable[[BaseException, str], None] | None = None,
    ) -> None:
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {MIN_PART_BYTES} (S3's minimum)")
        if part_records < 1 or part_seconds <= 0:
            raise ValueError("part_records and part_seconds must be positive")
        self.bucket, self.prefix = parse_s3_prefix(uri)
        self.shard = shard_label(shard)
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
        self._retry = retry
        self._endpoint = endpoint or "s3"  # names the S3 endpoint's circuit breaker
        self._spool = spool
        self._on_stall = on_stall
        self.stalled: BaseException | None = None  # an upload that never succeeded
        self._stalled_records = 0

    @property
    def spooled_records(self) -> int:
        """Records kept only in the local spool (after a stall)."""
        return self._stalled_records

    async def write(self, record: bytes) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        if self._failed is not None:
            raise self._failed
        check_record(record)
        part = self._open
        if part is None:
            part = self._open = self._new_part()
        part.records += 1
        part.bytes += len(record)
        if part.spooled is not None:
            try:
                await part.spooled.sink.write(record)
            except OSError as exc:
                await self._spool_failed(part, exc)
        if self.stalled is not None:
            self._stalled_records += 1
            return
        self._buf += record
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
        part = self._open
        if part is not None and part.spooled is not None:
            try:
                await part.spooled.sink.flush(durable=durable)
            except OSError as exc:
                await self._spool_failed(part, exc)
        if self.stalled is None and part is not None and self._aged(part):
            async with self._lock:
                await self._progress(close=False)

    async def aclose(self) -> None:
        if self._closed:
            return
        with anyio.CancelScope(shield=True):
            async with self._lock:
                self._closed = True
                if self._failed is None and self.stalled is None:
                    await self._progress(close=True)
                part, self._open = self._open, None
                if part is not None and part.spooled is not None:  # stalled: kept for a rerun
                    await part.spooled.sink.aclose()

    async def _spool_failed(self, part: _OpenPart, exc: OSError) -> None:
        """The local disk refused the spool (full, gone): S3 still gets every record,
        so go on without a spool; unless S3 is failing too, when nothing could keep
        the records and the error must stop the writer."""
        if self.stalled is not None:
            raise exc
        log.warning("the spool cannot be written (%s): going on without it", exc)
        spooled, part.spooled, self._spool = part.spooled, None, None
        if spooled is not None:
            with contextlib.suppress(OSError):
                await spooled.sink.aclose()

    def _part_key(self, seq: int) -> str:
        return f"{self.prefix}part-{self.run_stamp}-{self.shard}-{seq:06d}.jsonl"

    def _new_part(self) -> _OpenPart:
        key = self._part_key(self._seq)
        self._seq += 1
        name = key[len(self.prefix) :]
        spooled = self._spool.start(name) if self._spool is not None else None
        return _OpenPart(key=key, opened_at=self._clock.monotonic(), spooled=spooled)

    async def _s3(self, method: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
        """One S3 call of the sink, retried on transient errors."""
        return await self._retry(
            partial(method, **kwargs),
            endpoint=f"s3 {self._endpoint}",
            name=f"the S3 endpoint {self._endpoint}",
        )

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
        except Exception as exc:
            if self._spool is not None:  # the records wait in the spool
                await self._stall(part, exc)
                return
            self._open = None
            await self._abort(part)
            self._failed = OutputFailed(f"s3://{self.bucket}/{part.key}", exc)
            raise self._failed from exc
        except BaseException as exc:
            self._failed = exc
            self._open = None
            await self._abort(part)
            raise

    async def _stall(self, part: _OpenPart, exc: Exception) -> None:
        """An upload failed for good: keep everything in the spool from now on."""
        self.stalled = exc
        self._buf = bytearray()
        await self._abort(part)
        if self._open is None:
            self._open = part  # its spool file takes the records from now on
        elif part.spooled is not None:  # a newer part took over: this file is whole
            await part.spooled.sink.aclose()
        self._stalled_records = part.records + (self._open.records if self._open is not part else 0)
        if self._on_stall is not None:
            self._on_stall(exc, f"s3://{self.bucket}/{part.key}")

    async def _upload_part(self, part: _OpenPart) -> None:
        data = bytes(self._buf)
        self._buf = bytearray()
        if part.upload_id is None:
            created = await self._s3(
                self._client.create_multipart_upload,
                Bucket=self.bucket,
                Key=part.key,
                ContentType=_CONTENT_TYPE,
            )
            part.upload_id = created["UploadId"]
        await self._send_part(part, data)

    async def _send_part(self, part: _OpenPart, data: bytes) -> None:
        number = len(part.etags) + 1
        sent = await self._s3(
            self._client.upload_part,
            Bucket=self.bucket,
            Key=part.key,
            UploadId=part.upload_id,
            PartNumber=number,
            Body=data,
        )
        part.etags.append(sent["ETag"])
        self.parts_uploaded += 1

    async def _complete(self, part: _OpenPart) -> None:
        self._open = None
        data = bytes(self._buf)
        self._buf = bytearray()
        if part.spooled is not None:  # the spool holds every record before S3 does
            await part.spooled.sink.flush()
        if part.upload_id is None:
            await self._s3(
                self._client.put_object,
                Bucket=self.bucket,
                Key=part.key,
                Body=data,
                ContentType=_CONTENT_TYPE,
            )
        else:
            if data:
                await self._send_part(part, data)
            parts = [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(part.etags, 1)]
            await self._complete_upload(part, parts)
        self.keys_written.append(part.key)
        self.records_written += part.records
        if part.spooled is not None and self._spool is not None:
            await self._spool.finish(part.spooled)

    async def _complete_upload(self, part: _OpenPart, parts: list[dict[str, Any]]) -> None:
        try:
            await self._s3(
                self._client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=part.key,
                UploadId=part.upload_id,
                MultipartUpload={"Parts": parts},
            )
        except Exception as exc:
            # A retry after a completion whose answer was lost finds the upload gone:
            # the object is there, and complete.
            code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
            if code != "NoSuchUpload" or not await self._exists(part.key):
                raise

    async def _exists(self, key: str) -> bool:
        try:
            await self._s3(self._client.head_object, Bucket=self.bucket, Key=key)
        except Exception:
            return False
        return True

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
