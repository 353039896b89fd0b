"""Byte streams a manifest can come from: a local file, an S3 object, gzip over either,
and the pages of an S3 listing.

This module is the named boundary for "manifest streams": foreign errors met while
reading a manifest or listing S3 (botocore, aiohttp, ``OSError``, ``TimeoutError``,
``zlib.error``) are caught here and nowhere else in ``batchrek.manifest``, and each
becomes ``StreamBroken``. Readers then decide in one place whether it is fatal
(nothing read yet: ``ManifestUnreadable``) or one more problem record (the stream
broke after some lines were already handed out). The one other catch is the walk of
a local directory (``_localdir``), whose ``OSError`` for a folder it cannot list
becomes a problem record there.
"""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import AsyncIterator
from concurrent.futures import Future
from typing import Any, Final, Protocol

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from batchrek.blocking import submit

__all__ = [
    "CHUNK_BYTES",
    "GZIP_MAGIC",
    "S3_ERRORS",
    "Peekable",
    "S3ClientLike",
    "StreamBroken",
    "gunzip",
    "local_chunks",
    "read_all",
    "s3_chunks",
    "s3_listing",
]

CHUNK_BYTES: Final = 1024 * 1024
GZIP_MAGIC: Final = b"\x1f\x8b"

# What a dropped connection, a timeout or an S3 error can raise while streaming.
S3_ERRORS: Final = (BotoCoreError, ClientError, aiohttp.ClientError, OSError, TimeoutError)


class S3ClientLike(Protocol):
    """The slice of an aiobotocore S3 client the readers use."""

    async def get_object(self, **kwargs: Any) -> Any: ...

    def get_paginator(self, operation_name: str) -> Any: ...


class StreamBroken(Exception):
    """Reading a manifest stream failed; the message says what and where."""


async def local_chunks(path: str, *, size: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
    """The file in ``size`` chunks: one thread hop per chunk, never per line.

    A manifest may be a pipe (``batchrek run <(make-list)``), whose open and reads
    block until its writer writes: they run on daemon threads (``batchrek.blocking``),
    so a stop never waits for a writer that may never come. Plain descriptors, no
    file object: closing one never waits for a read stuck on another thread."""
    opening = submit(os.open, path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fd = await asyncio.wrap_future(opening)
    except OSError as exc:
        raise StreamBroken(f"cannot open {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # a NUL byte in the path
        raise StreamBroken(f"cannot open {path!r}: {exc}") from exc
    except BaseException:  # cancelled while the open blocks: close it if it ever opens
        opening.add_done_callback(_close_opened)
        raise
    reading: Future[bytes] | None = None
    try:
        while True:
            reading = submit(os.read, fd, size)
            try:
                chunk = await asyncio.wrap_future(reading)
            except OSError as exc:
                raise StreamBroken(f"cannot read {path}: {exc.strerror or exc}") from exc
            if not chunk:
                return
            yield chunk
    finally:
        if reading is None or reading.done():
            os.close(fd)
        else:  # a read still blocked: the descriptor is closed when it returns
            reading.add_done_callback(lambda _: os.close(fd))


def _close_opened(opening: Future[int]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        os.close(opening.result())


async def s3_chunks(
    s3: S3ClientLike, bucket: str, key: str, *, size: int = CHUNK_BYTES
) -> AsyncIterator[bytes]:
    """An S3 object's body, streamed; the whole object is never held."""
    where = f"s3://{bucket}/{key}"
    try:
        response = await s3.get_object(Bucket=bucket, Key=key)
    except S3_ERRORS as exc:
        raise StreamBroken(f"cannot get {where}: {exc}") from exc
    body = response["Body"]
    try:
        while True:
            try:
                chunk: bytes = await body.read(size)
            except S3_ERRORS as exc:
                raise StreamBroken(f"reading {where} failed: {exc}") from exc
            if not chunk:
                return
            yield chunk
    finally:
        body.close()


async def s3_listing(s3: S3ClientLike, bucket: str, prefix: str) -> AsyncIterator[Any]:
    """ListObjectsV2 pages for ``prefix``, as S3 returns them; a failure is
    ``StreamBroken`` carrying S3's own message."""
    paginator = s3.get_paginator("list_objects_v2")
    try:
        async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            yield page
    except S3_ERRORS as exc:
        raise StreamBroken(str(exc)) from exc


async def gunzip(
    chunks: AsyncIterator[bytes], *, name: str, max_out: int = CHUNK_BYTES
) -> AsyncIterator[bytes]:
    """Decompress gzip as it streams, in bounded pieces (a gzip bomb cannot blow memory).

    Concatenated gzip members (what ``cat a.gz b.gz`` makes) are read as one stream.
    """
    inflater = zlib.decompressobj(wbits=31)
    in_member = False  # the current inflater has been fed part of a member
    async for chunk in chunks:
        data = chunk
        while True:
            in_member = in_member or bool(data)
            try:
                out = inflater.decompress(data, max_out)
            except zlib.error as exc:
                raise StreamBroken(f"{name} is not valid gzip: {exc}") from exc
            if out:
                yield out
            if inflater.eof:
                data = inflater.unused_data
                inflater = zlib.decompressobj(wbits=31)
                in_member = False
                if not data:
                    break
                continue
            data = inflater.unconsumed_tail
            # A full output piece may leave output pending inside zlib: ask again.
            if not data and len(out) < max_out:
                break
    if in_member:
        raise StreamBroken(f"{name} ends in the middle of its gzip data (truncated?)")


class Peekable:
    """A chunk stream whose first bytes can be inspected before it is consumed."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._head = b""
        self._ended = False

    async def peek(self, size: int) -> bytes:
        """At least ``size`` bytes from the start (fewer only at the end of the stream)."""
        while len(self._head) < size and not self._ended:
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._ended = True
                break
            self._head += chunk
        return self._head

    async def chunks(self) -> AsyncIterator[bytes]:
        head, self._head = self._head, b""
        if head:
            yield head
        if not self._ended:
            async for chunk in self._chunks:
                yield chunk

    def __repr__(self) -> str:
        return f"Peekable(buffered={len(self._head)}, ended={self._ended})"


async def read_all(chunks: AsyncIterator[bytes], *, limit: int, name: str) -> bytes:
    """A small file whole (an inventory's manifest.json), refusing anything over ``limit``."""
    parts: list[bytes] = []
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise StreamBroken(f"{name} is larger than {limit} bytes; is it the right file?")
        parts.append(chunk)
    return b"".join(parts)
