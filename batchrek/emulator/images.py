"""From an ``Image`` parameter to an analysed picture, doing each step at most once.

Bytes are keyed by their sha256, S3 objects by URI + ETag (one HeadObject per call,
no download once seen). Small base64 payloads seen before skip decoding and hashing
altogether: a benchmark resends the same image thousands of times a second.
Decoding runs in a worker thread, and concurrent requests for the same new image
wait for one decode instead of starting their own.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from batchrek.emulator.analysis import Analysis, AnalysisCache, analyse
from batchrek.emulator.apierrors import ServiceError
from batchrek.emulator.s3access import S3Access
from batchrek.emulator.validation import Header, check_header, parse_image, read_header
from batchrek.limits import ImageLimits

__all__ = ["ImageResolver", "Picture"]

_MEMO_MAX_CHARS = 256 * 1024  # base64 payloads up to ~192 KB are remembered verbatim
_MEMO_ENTRIES = 2048


@dataclass(frozen=True, slots=True)
class Picture:
    """An analysed image; ``key`` names it in the accounting."""

    key: str
    digest: str
    mode: Literal["bytes", "s3object"]
    analysis: Analysis


class ImageResolver:
    def __init__(self, s3: S3Access, cache: AnalysisCache | None = None) -> None:
        self._s3 = s3
        self._cache = cache or AnalysisCache()
        self._pending: dict[str, asyncio.Future[Analysis | ServiceError]] = {}
        self._objects: OrderedDict[tuple[str, str], tuple[str, Header]] = OrderedDict()
        # base64 text -> (sha256, header, decoded size), for small repeated payloads.
        self._memo: OrderedDict[str, tuple[str, Header, int]] = OrderedDict()

    def clear(self) -> None:
        self._cache.clear()
        self._objects.clear()
        self._memo.clear()
        self._s3.forget()

    async def resolve(self, param: Any, limits: ImageLimits) -> Picture:
        seen = self._seen_bytes(param, limits)
        if seen is not None:
            return seen
        source = parse_image(param, limits.bytes_cap)
        if isinstance(source, bytes):
            digest = hashlib.sha256(source).hexdigest()
            header = read_header(source)
            blob = param["Bytes"]
            if len(blob) <= _MEMO_MAX_CHARS:
                self._memo[blob] = (digest, header, len(source))
                if len(self._memo) > _MEMO_ENTRIES:
                    self._memo.popitem(last=False)
            check_header(header, limits)
            return Picture(digest, digest, "bytes", await self._analysis(digest, source, header))
        head = await self._s3.head(source, limits.s3_object_cap)
        known = self._objects.get((source.uri, head.etag))
        if known is not None:
            check_header(known[1], limits)
            cached = self._cache.get(known[0])
            if cached is not None:
                return Picture(source.uri, known[0], "s3object", _unwrap(cached))
        data = await self._s3.get(source)
        digest, header = hashlib.sha256(data).hexdigest(), read_header(data)
        self._remember(source.uri, head.etag, (digest, header))
        check_header(header, limits)
        return Picture(source.uri, digest, "s3object", await self._analysis(digest, data, header))

    def _seen_bytes(self, param: Any, limits: ImageLimits) -> Picture | None:
        """The fast path: a Bytes payload seen before whose analysis is cached."""
        if not isinstance(param, dict) or len(param) != 1:
            return None
        blob = param.get("Bytes")
        known = self._memo.get(blob) if isinstance(blob, str) else None
        if known is None:
            return None
        digest, header, size = known
        cached = self._cache.get(digest)
        if cached is None or size > limits.bytes_cap:
            return None  # the slow path decodes again, or raises the right error
        check_header(header, limits)
        return Picture(digest, digest, "bytes", _unwrap(cached))

    def _remember(self, uri: str, etag: str, known: tuple[str, Header]) -> None:
        self._objects[(uri, etag)] = known
        if len(self._objects) > 50_000:
            self._objects.popitem(last=False)

    async def _analysis(self, digest: str, data: bytes, header: Header) -> Analysis:
        found = self._cache.get(digest)
        if found is None:
            task = self._pending.get(digest)
            if task is None:
                task = self._pending[digest] = asyncio.ensure_future(
                    self._decode(digest, data, header)
                )
            # Shielded: one cancelled requester must not cancel the others' decode.
            found = await asyncio.shield(task)
        return _unwrap(found)

    async def _decode(self, digest: str, data: bytes, header: Header) -> Analysis | ServiceError:
        loop = asyncio.get_running_loop()
        try:
            if header.width * header.height <= _INLINE_PIXELS:
                # ~0.5 ms: a thread hand-off (and the GIL ping-pong) would cost more.
                result = _analyse_or_error(data, header)
            else:
                result = await loop.run_in_executor(None, _analyse_or_error, data, header)
        finally:
            del self._pending[digest]
        self._cache.put(digest, result)
        return result

    def __repr__(self) -> str:
        return f"ImageResolver(cache={self._cache!r}, objects={len(self._objects)})"


_INLINE_PIXELS = 512 * 512  # analysed on the loop; bigger images go to a thread


def _analyse_or_error(data: bytes, header: Header) -> Analysis | ServiceError:
    try:
        return analyse(data, header)
    except ServiceError as exc:
        return exc


def _unwrap(found: Analysis | ServiceError) -> Analysis:
    if isinstance(found, ServiceError):
        # A fresh exception each time: a cached instance would collect tracebacks.
        raise ServiceError(found.code, found.message, found.status)
    return found
