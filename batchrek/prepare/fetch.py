"""Bringing image bytes to the client: local files, S3 objects and https URLs.

Every fetch is capped in size before the bytes are held, so a mislabelled 2 GB video
in a manifest costs one error record, not the run's memory.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp

from batchrek.errors import ItemError
from batchrek.models import HttpUrl, LocalPath, S3Ref

__all__ = ["Fetcher"]

_CHUNK = 1024 * 1024
# Local reads go to a thread in batches: the reads asked for in one turn of the event
# loop leave together (a burst of responses frees a burst of tasks), and once _HOPS
# hops are in flight the next takes everything queued meanwhile (up to _BATCH). A hop
# costs the event loop ~60 us and the process ~165 us of CPU (waking a thread, the GIL
# going back and forth), against ~15 us to read a small photo from the page cache;
# measured at 500 images/s, a hop carries ~5 reads. The loop itself never reads: a
# cold disk or a network mount stalls a reader thread, not the run.
_HOPS = 4  # parallel reads for a slow (network) disk
_BATCH = 16


def _too_big(what: str, size: int, cap: int) -> ItemError:
    return ItemError(
        "ImageTooLarge",
        f"{what} is {size:,} bytes, over max_source_bytes ({cap:,}); raise it to process it",
    )


def _read_capped(path: str, cap: int) -> bytes:
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > cap:
            raise _too_big(path, size, cap)
        return fh.read()


class _Read:
    __slots__ = ("cap", "future", "path")

    def __init__(self, path: str, cap: int, future: asyncio.Future[bytes]) -> None:
        self.path, self.cap, self.future = path, cap, future


def _read_batch(batch: list[_Read]) -> list[bytes | BaseException]:
    """Reader thread: each file whole, or the error reading it."""
    out: list[bytes | BaseException] = []
    for read in batch:
        try:
            out.append(_read_capped(read.path, read.cap))
        except Exception as exc:  # handed to the waiting task, which translates it
            out.append(exc)
    return out


class _BatchReader:
    """Coalesces local reads into few thread hops (see _HOPS)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(_HOPS, thread_name_prefix="batchrek-read")
        self._queue: list[_Read] = []
        self._hops = 0
        self._scheduled = False
        self.reads = self.hops_done = 0

    async def read(self, path: str, cap: int) -> bytes:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        self._queue.append(_Read(path, cap, future))
        self.reads += 1
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        # A cancelled caller only cancels its own future: the batch goes on.
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        while self._queue and self._hops < _HOPS:
            self._hop()

    def _hop(self) -> None:
        batch, self._queue = self._queue[:_BATCH], self._queue[_BATCH:]
        self._hops += 1
        done = asyncio.wrap_future(self._executor.submit(_read_batch, batch))
        done.add_done_callback(lambda f: self._landed(batch, f))

    def _landed(
        self, batch: list[_Read], done: asyncio.Future[list[bytes | BaseException]]
    ) -> None:
        self._hops -= 1
        self.hops_done += 1
        # _read_batch catches per file; the hop itself fails only when close() cancels it.
        results: list[bytes | BaseException]
        if done.cancelled():
            results = [RuntimeError("the reader was closed before this read")] * len(batch)
        elif (error := done.exception()) is not None:
            results = [error] * len(batch)
        else:
            results = done.result()
        for read, got in zip(batch, results, strict=True):
            if read.future.done():  # its caller was cancelled
                continue
            if isinstance(got, BaseException):
                read.future.set_exception(got)
            else:
                read.future.set_result(got)
        self._flush()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class Fetcher:
    """Reads sources into memory; one instance per run, sharing its clients."""

    def __init__(
        self,
        *,
        s3_for_region: Any,
        http: aiohttp.ClientSession | None,
        max_bytes: int,
        allow_http: bool,
        http_timeout_s: float,
    ) -> None:
        self._s3_for_region = s3_for_region
        self._http = http
        self._max = max_bytes
        self._allow_http = allow_http
        self._timeout = aiohttp.ClientTimeout(total=http_timeout_s)
        self._reader = _BatchReader()

    def close(self) -> None:
        """Stop the reader threads (a batch still running finishes first)."""
        self._reader.close()

    async def local(self, src: LocalPath) -> bytes:
        # Measured per read of a 10 kB file at 64 in flight, process CPU: ~400 us
        # through anyio.to_thread (its limiter, cancel scope and up to 40 threads
        # contending for the GIL), ~165 us through a plain executor, less again in
        # batches. Cancelling the caller abandons its read; the bytes are dropped.
        try:
            return await self._reader.read(src.path, self._max)
        except FileNotFoundError:
            raise ItemError("SourceNotFound", f"no such file: {src.path}") from None
        except IsADirectoryError:
            raise ItemError("SourceNotFound", f"is a directory, not an image: {src.path}") from None
        except PermissionError:
            raise ItemError("AccessDenied", f"permission denied reading {src.path}") from None

    async def s3(self, src: S3Ref, *, region: str, known_size: int | None) -> bytes:
        if known_size is not None and known_size > self._max:
            raise _too_big(str(src), known_size, self._max)
        client = await self._s3_for_region(region)
        kwargs: dict[str, Any] = {"Bucket": src.bucket, "Key": src.key}
        if src.version:
            kwargs["VersionId"] = src.version
        response = await client.get_object(**kwargs)
        size = int(response.get("ContentLength") or 0)
        body = response["Body"]
        try:
            if size > self._max:
                raise _too_big(str(src), size, self._max)
            data = await body.read()
        finally:
            body.close()
        return bytes(data)

    async def http(self, src: HttpUrl) -> bytes:
        if src.url[:5].lower() == "http:" and not self._allow_http:
            raise ItemError(
                "InsecureUrl",
                f"plain http is off: pass --allow-http (setting allow_http) to fetch {src.url}",
            )
        if self._http is None:
            raise ItemError("InternalClientError", "no HTTP session for URL sources")
        try:
            async with self._http.get(src.url, timeout=self._timeout) as resp:
                if resp.status == 404:
                    raise ItemError("SourceNotFound", f"HTTP 404 for {src.url}")
                if resp.status >= 400:
                    raise ItemError(
                        "DownloadFailed",
                        f"HTTP {resp.status} for {src.url}",
                        retryable=resp.status >= 500 or resp.status == 429,
                    )
                declared = resp.content_length
                if declared is not None and declared > self._max:
                    raise _too_big(src.url, declared, self._max)
                chunks: list[bytes] = []
                total = 0
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    total += len(chunk)
                    if total > self._max:
                        raise _too_big(src.url, total, self._max)
                    chunks.append(chunk)
                return b"".join(chunks)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ItemError(
                "DownloadFailed", f"{type(exc).__name__} fetching {src.url}: {exc}", retryable=True
            ) from None
