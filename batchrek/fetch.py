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
# Threads reading local files. A read from the page cache takes ~15 us, so a few
# threads keep up with any rate the service allows; more threads only fight over the
# GIL with the event loop.
_READERS = 4


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
        self._readers = ThreadPoolExecutor(_READERS, thread_name_prefix="batchrek-read")

    def close(self) -> None:
        """Stop the reader threads (a read still running finishes first)."""
        self._readers.shutdown(wait=True, cancel_futures=True)

    async def local(self, src: LocalPath) -> bytes:
        # One hop for open + fstat + read (not one per step), on a small executor of
        # our own: measured per read of a 10 kB file at 64 in flight, process CPU was
        # ~400 us through anyio.to_thread (its limiter, cancel scope and up to 40
        # threads contending for the GIL) and ~165 us here; inline would be ~30 us,
        # but a cold disk or a network mount must never stall the event loop.
        # Cancelling the caller abandons the read; its bytes are dropped.
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._readers, _read_capped, src.path, self._max)
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
                "InsecureUrl", f"plain http is off (set allow_http = true to fetch {src.url})"
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
