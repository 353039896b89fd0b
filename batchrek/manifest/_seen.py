"""Which ids a manifest has used so far, and on which line first: about 15 bytes an id.

An id names one image: the output holds one record per (id, operation), so a second
image under the same id would be billed and then lost at the next resume. The
selection asks ``SeenIds.add`` for every item of its shard; a repeat becomes a
``ManifestError`` record naming the first line, and is never called.

The set must hold every id of a 10-million-line manifest, so it stores no strings:

- an id is its 64-bit hash: CPython's keyed SipHash of the string (``hash``, cached on
  the str, ~20x cheaper than blake2b). The set lives only inside the process that
  built it, so a per-process key is fine, and a hostile manifest cannot aim for
  collisions without knowing it. Two different ids colliding (about n²/2⁶⁵: 3e-6 for
  10 million ids) would make the second look like a repeat: one wrong ManifestError
  record, never a lost result;
- keys sit in buckets by their top bits, each bucket a sorted ``array('Q')`` with the
  first line numbers beside it in an ``array('I')``: 8 + 4 bytes an id, plus arrays'
  small over-allocation (~14.8 bytes an id in all, measured at 10M). A lookup is one
  bisect in a bucket, an insert one memmove of a few KiB; when the buckets average
  ``BUCKET_IDS`` ids, each splits in two at its next bit (one bisect: the keys are
  sorted), one bucket at a time, so the structure is never copied whole.
- the cost is CPU, not memory: at 10M ids the buckets are cold in the CPU cache, and
  an add costs ~3 us (a Python set of the strings: ~0.4 us, and ~9x the memory).

``scripts/bench_dupes.py`` measures bytes per id and ids/s at 10 million, beside a
Python set of the same ids.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from collections.abc import Callable
from hashlib import blake2b

__all__ = ["SeenIds"]

_MASK = (1 << 64) - 1
_LINE_MAX = 0xFFFFFFFF  # a first line beyond this is recorded as unknown (0)


def _blake(item_id: str) -> int:
    data = item_id.encode("utf-8", "surrogatepass")
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little")


_hash: Callable[[str], int] = hash if sys.hash_info.width == 64 else _blake


class SeenIds:
    """A set of ids that remembers the first line of each (see the module doc)."""

    # Average ids per bucket that makes every bucket split. Measured at 10M ids: 512
    # costs the same memory as 2048 (~14.8 B/id) and ~25% less CPU (an insert moves
    # fewer bytes of a cold bucket); 128 is faster still but holds ~22 B/id.
    BUCKET_IDS = 512

    __slots__ = ("_bits", "_keys", "_lines", "_n")

    def __init__(self) -> None:
        self._bits = 0  # 2**bits buckets; a key's bucket is its top ``bits`` bits
        self._keys: list[array[int]] = [array("Q")]
        self._lines: list[array[int]] = [array("I")]
        self._n = 0

    def add(self, item_id: str, line: int) -> int | None:
        """Remember ``item_id`` first seen on ``line``. Returns None when the id is new,
        else the line it was first seen on (0 when that is not known)."""
        key = _hash(item_id) & _MASK
        bucket = key >> (64 - self._bits)
        keys = self._keys[bucket]
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            return self._lines[bucket][i]
        keys.insert(i, key)
        self._lines[bucket].insert(i, line if 0 < line <= _LINE_MAX else 0)
        n = self._n = self._n + 1
        if n > self.BUCKET_IDS << self._bits:
            self._split()
        return None

    def _split(self) -> None:
        shift = 63 - self._bits  # the next bit below the bucket's prefix
        keys_out: list[array[int]] = []
        lines_out: list[array[int]] = []
        for bucket in range(len(self._keys)):
            keys, lines = self._keys[bucket], self._lines[bucket]
            cut = bisect_left(keys, ((bucket << 1) | 1) << shift)
            keys_out += (keys[:cut], keys[cut:])
            lines_out += (lines[:cut], lines[cut:])
            self._keys[bucket] = self._lines[bucket] = array("B")  # freed as we go
        self._keys, self._lines = keys_out, lines_out
        self._bits += 1

    def __len__(self) -> int:
        return self._n

    def __contains__(self, item_id: object) -> bool:
        if not isinstance(item_id, str):
            return False
        key = _hash(item_id) & _MASK
        keys = self._keys[key >> (64 - self._bits)]
        i = bisect_left(keys, key)
        return i < len(keys) and keys[i] == key

    @property
    def nbytes(self) -> int:
        """Bytes the arrays hold, over-allocation aside."""
        return sum(len(k) * k.itemsize + len(v) * v.itemsize for k, v in self._buckets())

    def _buckets(self) -> zip[tuple[array[int], array[int]]]:
        return zip(self._keys, self._lines, strict=True)

    def __repr__(self) -> str:
        return f"SeenIds(ids={self._n}, buckets={len(self._keys)}, bytes={self.nbytes})"
