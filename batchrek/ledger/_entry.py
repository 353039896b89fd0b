"""One ledger entry: 32 bytes, fixed, little-endian, so a segment is an array.

    0      8        16                         24        28       32
    │ id   │ content │ loc: output (24 bits)    │ length  │ check  │
    │ key  │ key     │      offset (40 bits)    │ (u32)   │ (u32)  │

- ``id key``: a digest of (operation, item id): finds the pair's latest entry, so a
  pair whose content is unchanged is skipped and one whose content changed is told
  apart from a new one;
- ``content key``: a digest of (operation, parameters digest, content identity):
  the key a result is valid for; finds the earlier record of the same content under
  another id (reuse) and, compared with the id's entry, says "unchanged";
- ``loc`` and ``length``: where the record lives - an output named in the segment's
  own output table (24 bits: 16.7M outputs), a byte offset in it (40 bits: 1 TiB)
  and its length - read back with one pread or one ranged GET;
- ``check``: 32 bits mixed from the other fields. A torn tail is cut at a multiple of
  32 bytes; the check rejects what a crash can leave inside that (a zero-filled or
  half-written entry), with 2^-32 odds of accepting garbage.

A zero-length entry keyed ``COVERED_KEY`` is a mark, not a pair: it says an output
was read back to its offset (see ``_catchup``).

Fixed-size entries let numpy view a whole segment without parsing (``DTYPE``): the
10M-entry load is a few vectorised passes, not 10M Python iterations.
"""

from __future__ import annotations

import struct
from typing import Any, Final

import numpy as np

__all__ = [
    "COVERED_KEY",
    "DTYPE",
    "ENTRY_BYTES",
    "MAX_OFFSET",
    "MAX_OUTPUTS",
    "check_of",
    "checks_of",
    "checks_ok",
    "pack_entry",
]

ENTRY_BYTES: Final = 32
MAX_OUTPUTS: Final = 1 << 24
MAX_OFFSET: Final = (1 << 40) - 1
_M64: Final = (1 << 64) - 1
_MAGIC: Final = 0x6261_7463_6872_656B  # "batchrek": a zeroed entry never checks out
_K1: Final = 0x9E37_79B9_7F4A_7C15
_K2: Final = 0xC2B2_AE3D_27D4_EB4F
_K3: Final = 0x1656_67B1_9E37_79F9
_STRUCT: Final = struct.Struct("<QQQII")
# The id and content key of a "covered to here" mark: a zero-length entry at the end of
# what a ledger catch-up read of an output (``_catchup``), so error records and a torn
# line there are not read again. No pair has this key (a 64-bit digest equal to it:
# 2^-64), and the index keeps marks out of its lookups.
COVERED_KEY: Final = 0x2165_7265_766F_6321  # "!covered"

DTYPE: Final = np.dtype(
    [("id", "<u8"), ("content", "<u8"), ("loc", "<u8"), ("length", "<u4"), ("check", "<u4")]
)
assert DTYPE.itemsize == ENTRY_BYTES


def check_of(id_key: int, content_key: int, loc: int, length: int) -> int:
    """The 32-bit check of one entry (the scalar twin of ``checks_ok``)."""
    rotated = ((content_key << 21) | (content_key >> 43)) & _M64
    mixed = id_key ^ rotated ^ ((loc * _K1) & _M64) ^ ((length * _K2) & _M64) ^ _MAGIC
    return ((mixed * _K3) & _M64) >> 32


def pack_entry(id_key: int, content_key: int, output: int, offset: int, length: int) -> bytes:
    """32 bytes for one durable record at ``offset`` of the segment's ``output``."""
    if not 0 <= output < MAX_OUTPUTS:
        raise ValueError(f"output index {output} does not fit 24 bits")
    if not 0 <= offset <= MAX_OFFSET:
        raise ValueError(f"offset {offset} does not fit 40 bits")
    loc = output | (offset << 24)
    return _STRUCT.pack(
        id_key, content_key, loc, length, check_of(id_key, content_key, loc, length)
    )


def checks_ok(entries: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Which entries of a ``DTYPE`` array carry a valid check (vectorised)."""
    result: np.ndarray[Any, np.dtype[np.bool_]] = checks_of(entries) == entries["check"]
    return result


def checks_of(entries: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The check each entry of a ``DTYPE`` array should carry (``check_of``, vectorised)."""
    content = entries["content"]
    rotated = (content << np.uint64(21)) | (content >> np.uint64(43))
    mixed = (
        entries["id"]
        ^ rotated
        ^ (entries["loc"] * np.uint64(_K1))
        ^ (entries["length"].astype(np.uint64) * np.uint64(_K2))
        ^ np.uint64(_MAGIC)
    )
    return ((mixed * np.uint64(_K3)) >> np.uint64(32)).astype("<u4")
