"""Bringing image bytes to the client: local files, S3 objects and https URLs.

Every fetch is bounded twice before its bytes are held: by ``max_source_bytes`` for
the one source (a mislabelled 2 GB video costs one error record, not the run's
memory), and by the run's byte budget for all sources at once (``budget``), which an
item's ``Lease`` holds until the item is done. The pieces live in their own modules:

- ``localread``: regular files only, decided without blocking; daemon reader threads
  (the boundary for local sources);
- ``httpget``: URL downloads, redirects, the address policy of ``addresses`` (the
  boundary for HTTP sources);
- S3 GetObject is read here (the boundary for S3 source reads).

S3 GetObject and URL downloads go through the injected ``Retrier`` (the run gives
``call.TransientRetry``): SlowDown, 5xx, dropped connections and timeouts are retried
with back-off behind the endpoint's (or the URL host's) circuit breaker, and what an
attempt reserved in the item's lease is given back before the next one. The last
error, when no attempt succeeds, reaches the caller as before.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final, TypeVar

import aiohttp
from yarl import URL

from batchrek.errors import ItemError
from batchrek.models import HttpUrl, LocalPath, S3Ref
from batchrek.prepare.addresses import AddressPolicy
from batchrek.prepare.budget import ByteBudget, Lease
from batchrek.prepare.httpget import HttpRules, download
from batchrek.prepare.localread import BatchReader, too_big
from batchrek.retrying import Retrier, once

__all__ = ["Fetcher", "Retrier"]

_CHUNK: Final = 1024 * 1024
T = TypeVar("T")


class Fetcher:
    """Reads sources into memory; one instance per run, sharing its clients.

    ``budget``: the byte budget over every source held at once (None: unbounded, for
    tests and tools that fetch one image at a time).
    """

    def __init__(
        self,
        *,
        s3_for_region: Any,
        http: aiohttp.ClientSession | None,
        max_bytes: int,
        allow_http: bool,
        http_timeout_s: float,
        budget: ByteBudget | None = None,
        policy: AddressPolicy | None = None,
        retry: Retrier = once,
    ) -> None:
        self._s3_for_region = s3_for_region
        self._retry = retry
        self._http = http
        self._max = max_bytes
        self.budget = budget
        self._rules = HttpRules(
            policy=policy or AddressPolicy(),
            max_bytes=max_bytes,
            timeout_s=http_timeout_s,
            allow_http=allow_http,
        )
        self._reader = BatchReader()

    def lease(self) -> Lease | None:
        """An empty share of the budget for one item (None when unbounded)."""
        return self.budget.lease() if self.budget is not None else None

    def close(self) -> None:
        """Stop the reader threads; never waits for a read in progress."""
        self._reader.close()

    async def local(self, src: LocalPath, lease: Lease | None = None) -> bytes:
        # Measured per read of a 10 kB file at 64 in flight, process CPU: ~400 us
        # through anyio.to_thread (its limiter, cancel scope and up to 40 threads
        # contending for the GIL), ~165 us through a plain executor, less again in
        # batches. Cancelling the caller abandons its read; the bytes are dropped.
        return await self._reader.read(src.path, self._max, lease)

    async def s3(
        self, src: S3Ref, *, region: str, known_size: int | None, lease: Lease | None = None
    ) -> bytes:
        if known_size is not None and known_size > self._max:
            raise too_big(str(src), known_size, self._max)
        if lease is not None and known_size is not None:
            await lease.reserve(known_size)  # before the request: no connection waits
        client = await self._s3_for_region(region)
        kwargs: dict[str, Any] = {"Bucket": src.bucket, "Key": src.key}
        if src.version:
            kwargs["VersionId"] = src.version
        url = str(getattr(getattr(client, "meta", None), "endpoint_url", "") or f"s3 {region}")
        get = partial(self._s3_get, client, src, kwargs, known_size, lease)
        return await self._retry(
            _giving_back(get, lease), endpoint=f"s3 {url}", name=f"the S3 endpoint {url}"
        )

    async def _s3_get(
        self,
        client: Any,
        src: S3Ref,
        kwargs: dict[str, Any],
        known_size: int | None,
        lease: Lease | None,
    ) -> bytes:
        response = await client.get_object(**kwargs)
        size = int(response.get("ContentLength") or 0)
        body = response["Body"]
        try:
            if size > self._max:
                raise too_big(str(src), size, self._max)
            if lease is not None and known_size is None:
                await lease.reserve(size)
            elif lease is not None and known_size is not None and size > known_size:
                await lease.reserve(size - known_size)  # the object changed since listed
            data = io.BytesIO()  # grows in place; getvalue() hands it over uncopied
            total = 0
            while chunk := await body.read(_CHUNK):  # at most size + 1 bytes are held
                total += len(chunk)
                if total > size:
                    raise ItemError(
                        "SourceChanged", f"{src} sent more than its ContentLength", retryable=True
                    )
                data.write(chunk)
        finally:
            body.close()
        return data.getvalue()

    async def http(self, src: HttpUrl, lease: Lease | None = None) -> bytes:
        if self._http is None:
            raise ItemError("InternalClientError", "no HTTP session for URL sources")
        try:
            host = URL(src.url).host or src.url
        except ValueError:  # download() says what is wrong with it
            host = src.url
        return await self._retry(
            _giving_back(partial(download, self._http, src.url, self._rules, lease), lease),
            endpoint=f"url {host}",
            name=f"the host {host}",
            fatal=False,  # one dead host among many must not stop the run
        )


def _giving_back(fn: Callable[[], Awaitable[T]], lease: Lease | None) -> Callable[[], Awaitable[T]]:
    """``fn`` as one attempt: what it reserved in the lease is given back if it fails,
    so retries never hold more than one attempt's bytes."""
    if lease is None:
        return fn
    before = lease.held

    async def attempt() -> T:
        try:
            return await fn()
        except BaseException:
            lease.shrink_to(before)
            raise

    return attempt
