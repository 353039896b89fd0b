"""Content identity: what makes two images the same content, found as cheaply as it can be.

| source | identity | costs |
|---|---|---|
| S3, ETag and size known (Inventory, listing, manifest) | ``etag:<etag>/<size>`` | nothing |
| S3, version id known, no ETag | ``s3version:<bucket>/<key>#<version>`` | nothing |
| S3, neither | ``etag:<etag>/<size>`` from one HEAD request | a HEAD |
| local file, https URL | ``sha256:<hex>`` of the bytes | the read the call needs anyway |

ETag+size is preferred over the version because it is a property of the bytes: a
copy under another key has the same ETag (for objects uploaded in one part or with
the same part size), so its result can be reused; a version id only says "this key,
unchanged". Where the ETag is not an MD5 (SSE-KMS, other part sizes) the same bytes
get another identity and are analysed again: a miss, never a wrong reuse.

The scheme prefix is written into every record (``"content"``), so a reader knows which
identity a result was keyed by.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import anyio

from batchrek.models import Item, S3Ref

__all__ = ["Identity", "bytes_identity", "head_identity", "identify", "known_identity"]

Scheme = Literal["etag", "s3version", "sha256"]

# Hash on the event loop below this; above, a thread (hashlib releases the GIL).
_INLINE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Identity:
    scheme: Scheme
    value: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.value}"


def _etag(etag: str, size: int) -> Identity:
    return Identity("etag", f"{etag.strip(chr(34))}/{size}")


def known_identity(item: Item) -> Identity | None:
    """The identity the manifest already gives, or None (a HEAD or the bytes will)."""
    src = item.source
    if not isinstance(src, S3Ref):
        return None
    if item.etag and item.size is not None:
        return _etag(item.etag, item.size)
    if src.version:
        return Identity("s3version", f"{src.bucket}/{src.key}#{src.version}")
    return None


async def head_identity(s3: Any, ref: S3Ref) -> Identity | None:
    """ETag and size from one HEAD; None when the object cannot be asked about (the
    call itself will then say why, as an error record)."""
    kwargs: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
    if ref.version:
        kwargs["VersionId"] = ref.version
    try:
        head = await s3.head_object(**kwargs)
    except Exception:  # missing, forbidden, unreachable: decided by the real read
        # (A run-stopping error swallowed here is raised again by that read or by the
        # next attempt, before any record: the item gets none.)
        return None
    etag, size = head.get("ETag"), head.get("ContentLength")
    if not isinstance(etag, str) or not isinstance(size, int):
        return None
    return _etag(etag, size)


async def bytes_identity(data: bytes) -> Identity:
    """sha256 of the bytes already read for the call."""
    if len(data) <= _INLINE_BYTES:
        return Identity("sha256", hashlib.sha256(data).hexdigest())
    digest = await anyio.to_thread.run_sync(lambda: hashlib.sha256(data).hexdigest())
    return Identity("sha256", digest)


async def identify(
    item: Item, *, s3: Any | None, read_bytes: Callable[[], Awaitable[bytes]] | None
) -> Identity | None:
    """The item's identity by the cheapest means (see the table above); None when it
    cannot be had, and the pair is then simply analysed, without a ledger entry."""
    known = known_identity(item)
    if known is not None:
        return known
    if isinstance(item.source, S3Ref):
        return await head_identity(s3, item.source) if s3 is not None else None
    if read_bytes is None:
        return None
    try:
        data = await read_bytes()
    except Exception:  # the call reads it again and records the precise error
        return None
    return await bytes_identity(data)
