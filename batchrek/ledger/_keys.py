"""The digests a ledger entry is keyed by.

Both are 64-bit BLAKE2b with a fixed personalisation (not Python's per-process
``hash``): the ledger outlives processes and is read by other pods. 64 bits keep an
entry at 32 bytes. What a collision could do, and why it is harmless:

- two content keys colliding would offer the wrong record for reuse; every reused
  record is read back and its operation, parameters digest and content identity are
  compared with the item's before it is used, so the collision costs one call;
- an item's changed content colliding with the content key its id holds would skip a
  changed image: 2^-64 per changed image.
"""

from __future__ import annotations

from collections.abc import Mapping
from hashlib import blake2b
from typing import Any

import orjson

__all__ = ["content_key", "id_key", "params_digest"]

_ID = b"brk-ledger-id"
_CONTENT = b"brk-ledger-ct"
_PARAMS = b"brk-params"


def _u64(data: bytes, person: bytes) -> int:
    return int.from_bytes(blake2b(data, digest_size=8, person=person).digest(), "little")


def params_digest(method: str, params: Mapping[str, Any]) -> str:
    """16 hex digits naming (operation, parameters); key order does not matter."""
    canonical = orjson.dumps([method, params], option=orjson.OPT_SORT_KEYS)
    return blake2b(canonical, digest_size=8, person=_PARAMS).hexdigest()


def id_key(method: str, item_id: str) -> int:
    """The pair's key; the parameters are left out so a change of them reads as
    "changed", not "new"."""
    return _u64(method.encode() + b"\0" + item_id.encode("utf-8", "surrogatepass"), _ID)


def content_key(method: str, params: str, identity: str) -> int:
    """What a result is valid for: this operation, these parameters, this content."""
    data = f"{method}\0{params}\0{identity}".encode("utf-8", "surrogatepass")
    return _u64(data, _CONTENT)
