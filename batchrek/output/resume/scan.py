"""The pure part of resume: classify lines, index the done pairs, plan a compaction.

Nothing here does I/O. ``file`` and ``s3`` feed an output through a ``Scanner`` in
chunks, ask ``plan_compaction`` which pairs are done and which lines are dropped, and
copy the kept lines with ``keep_lines``. What the rules are:

- a pair is DONE when it has a record with status ``ok``, or an error that is not
  retryable (``Result.done``), unless ``redo_failed`` names its error code (or is
  True: every code): then the failure is redone, after the user fixed its cause;
- a record is SUPERSEDED when its pair will be redone (retryable or redone errors), when
  it is an extra record of a done pair (duplicates: ``ok`` is preferred over a
  permanent error, then the earliest), or when the line is not a record at all;
- an unterminated last line (a kill in the middle of a write) is TORN: cut off, and
  its pair simply redone.

The index stores a 64-bit hash of each done pair in one sorted ``array('q')``: 8 bytes
per pair and no ids. The hash is CPython's keyed SipHash of ``op \\0 id`` (``hash`` on
bytes, ~10x cheaper than blake2b): the index lives only inside the process that built
it, so a per-process key is fine. Two pairs colliding (about n²/2⁶⁵: 3e-8 for a million
pairs) would make one of them look done.

Lines are classified without parsing whole records: orjson writes ``id``, ``source``,
``operation`` and ``status`` first and in that order, so one anchored regex finds them.
Error records (usually few and small), ids with escapes, or lines written by another
tool take the slow path: a full ``orjson.loads``.
"""

from __future__ import annotations

import re
import sys
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from hashlib import blake2b

import orjson

__all__ = [
    "CHUNK_BYTES",
    "CompactionPlan",
    "RedoFailed",
    "ResumeIndex",
    "ResumeState",
    "Scanner",
    "keep_lines",
    "line_blocks",
    "pair_key",
    "plan_compaction",
]

CHUNK_BYTES = 4 * 1024 * 1024  # per read and per thread hop; bounds the transient memory

# Line kinds, in order of preference for the one record a done pair keeps.
OK, FAILED, RETRY, INVALID = 0, 1, 2, 3

# Which permanent failures a rerun redoes: none (False), all (True) or these codes.
RedoFailed = bool | Collection[str]

_FAST = re.compile(rb'\{"id":"([^"\\]*)","source":"[^"\\]*","operation":"([^"\\]*)","status":"ok"')


def _blake(data: bytes) -> int:
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little", signed=True)


_hash: Callable[[bytes], int] = hash if sys.hash_info.width == 64 else _blake


def pair_key(item_id: str, operation: str) -> int:
    """The 64-bit key of a pair; equal to what the scanner computes from a record."""
    return _hash(
        operation.encode("utf-8", "surrogatepass")
        + b"\0"
        + item_id.encode("utf-8", "surrogatepass")
    )


class ResumeIndex:
    """A sorted array of pair keys: membership by binary search, 8 bytes per pair."""

    __slots__ = ("_keys",)

    def __init__(self, keys: array[int] | None = None) -> None:
        self._keys: array[int] = keys if keys is not None else array("q")

    def __contains__(self, pair: object) -> bool:
        if not isinstance(pair, tuple) or len(pair) != 2:
            return False
        item_id, operation = pair
        if not isinstance(item_id, str) or not isinstance(operation, str):
            return False
        return self.has_key(pair_key(item_id, operation))

    def has_key(self, key: int) -> bool:
        keys = self._keys
        i = bisect_left(keys, key)
        return i < len(keys) and keys[i] == key

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def nbytes(self) -> int:
        """Bytes held by the keys themselves."""
        return len(self._keys) * self._keys.itemsize

    def __repr__(self) -> str:
        return f"ResumeIndex(pairs={len(self)}, bytes={self.nbytes})"


@dataclass(frozen=True, slots=True)
class ResumeState:
    """What ``load_resume`` found and repaired. ``(id, op) in state`` asks the index."""

    index: ResumeIndex
    records: int = 0  # complete lines that are records
    done: int = 0  # pairs a rerun skips (ok or failed for good)
    failed: int = 0  # of those, pairs whose record is a permanent error
    failed_by_code: dict[str, int] = field(default_factory=dict)  # ``failed`` by error code
    redo: int = 0  # pairs not done (retryable errors, redone failures): called again
    failed_redone: int = 0  # of those, pairs whose permanent error ``redo_failed`` named
    duplicates: int = 0  # extra records of done pairs, dropped
    superseded: int = 0  # retryable-error records, dropped
    invalid: int = 0  # lines that were not records (or blank), dropped
    torn_lines: int = 0  # unterminated last lines cut off (one per file or object)
    torn_bytes: int = 0
    compacted: bool = False  # the output was rewritten without the dropped records
    objects_rewritten: int = 0  # S3: part objects replaced by compacted ones
    stale_uploads_aborted: int = 0  # S3: multipart uploads a killed run left open

    def __contains__(self, pair: object) -> bool:
        return pair in self.index

    def __len__(self) -> int:
        return len(self.index)

    @property
    def dropped(self) -> int:
        return self.duplicates + self.superseded + self.invalid


# -- scanning ----------------------------------------------------------------------


class Scanner:
    """Classifies lines fed in chunks; remembers per line only a key and a kind.

    Line numbers run across segments (the part objects of an S3 output are segments
    of one logical file), so the plan can say which lines each segment loses.
    """

    def __init__(self, *, redo_failed: RedoFailed = False) -> None:
        self.redo_all = redo_failed is True
        self.redo_codes = frozenset() if isinstance(redo_failed, bool) else frozenset(redo_failed)
        self.keys: array[int] = array("q")  # per line, in order
        self.kinds = bytearray()  # per line, in order
        self.failed_keys: array[int] = array("q")  # kept permanent failures, with
        self.failed_lines: array[int] = array("q")  # their line numbers
        self.failed_codes: array[int] = array("H")  # and codes (indexes into ``codes``)
        self.codes: list[str] = []
        self._code_index: dict[str, int] = {}
        self.redo_keys: array[int] = array("q")
        self.failed_redone_keys: array[int] = array("q")
        self.dropped: array[int] = array("q")  # lines never kept, whatever else is seen
        self.records = 0
        self.invalid = 0
        self.superseded = 0
        self.torn_lines = 0
        self.torn_bytes = 0
        self.segment_ends: list[int] = []  # line count at the end of each segment
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        data = self._tail + chunk if self._tail else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            self._tail = data
            return
        self._tail = data[cut + 1 :]
        self._classify(data[:cut].split(b"\n"))

    def end_segment(self) -> int:
        """Close a segment; an unterminated tail is torn. Returns its length."""
        torn = len(self._tail)
        if torn:
            self.torn_lines += 1
            self.torn_bytes += torn
        self._tail = b""
        self.segment_ends.append(len(self.kinds))
        return torn

    def _classify(self, lines: list[bytes]) -> None:
        # Whole-list passes (map, comprehensions) instead of one loop with branches:
        # about half the interpreter work per line on the common, all-ok path.
        base = len(self.kinds)
        key_of = _hash
        matches = list(map(_FAST.match, lines))
        keys = [key_of(m[2] + b"\0" + m[1]) if m is not None else 0 for m in matches]
        kinds = bytearray(len(lines))  # OK
        slow = [i for i, m in enumerate(matches) if m is None]
        del matches
        for i in slow:
            kind, key, code = _classify_slow(lines[i])
            if kind == FAILED and self._redoes(code):
                self.failed_redone_keys.append(key)
                kind = RETRY
            keys[i], kinds[i] = key, kind
            self._note(kind, key, base + i, code)
        self.keys.extend(keys)
        self.kinds += kinds
        self.records = len(self.kinds) - self.invalid

    def _redoes(self, code: str) -> bool:
        return self.redo_all or code in self.redo_codes

    def _note(self, kind: int, key: int, lineno: int, code: str) -> None:
        if kind == OK:
            return
        if kind == FAILED:
            index = self._code_index.get(code)
            if index is None:
                index = self._code_index[code] = len(self.codes)
                self.codes.append(code)
            self.failed_keys.append(key)
            self.failed_lines.append(lineno)
            self.failed_codes.append(index)
            return
        self.dropped.append(lineno)
        if kind == INVALID:
            self.invalid += 1
        else:
            self.superseded += 1
            self.redo_keys.append(key)

    def done_keys(self) -> Iterator[memoryview]:
        """The keys of done lines, in runs between the lines that are never kept."""
        keys = memoryview(self.keys)  # slices without copies
        start = 0
        for stop in self.dropped:
            if stop > start:
                yield keys[start:stop]
            start = stop + 1
        if start < len(keys):
            yield keys[start:]


def _classify_slow(line: bytes) -> tuple[int, int, str]:
    """Full parse: errors, escaped ids, other key orders, other writers. Returns the
    kind, the pair key and the error code (``""`` when there is none)."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return INVALID, 0, ""
    if not isinstance(record, dict):
        return INVALID, 0, ""
    item_id, operation = record.get("id"), record.get("operation")
    if not isinstance(item_id, str) or not isinstance(operation, str):
        return INVALID, 0, ""
    key = pair_key(item_id, operation)
    status, error = record.get("status"), record.get("error")
    if status == "ok":
        return OK, key, ""
    # Mirrors Result.done: an error is final unless it says it is retryable.
    if status == "error" and isinstance(error, dict) and not error.get("retryable", False):
        code = error.get("code")
        return FAILED, key, code if isinstance(code, str) else ""
    return RETRY, key, ""


# -- planning ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompactionPlan:
    """What a scan found (``state``) and which lines a compaction leaves out."""

    state: ResumeState
    dropped: array[int]  # sorted line numbers to leave out when compacting


def plan_compaction(scan: Scanner) -> CompactionPlan:
    """Index the done pairs and pick the lines to drop. Consumes the scan: its
    per-line arrays are released, so call it once, after the last segment."""
    keys, multi = _sorted_unique(scan.done_keys())
    index = ResumeIndex(keys)
    dropped = scan.dropped
    duplicates = 0
    best: dict[int, int] = {}
    if multi:
        kinds = scan.kinds
        extra = [i for i, k in enumerate(scan.keys) if k in multi and kinds[i] in (OK, FAILED)]
        for i in extra:  # prefer ok over a permanent error, then the earliest
            key = scan.keys[i]
            held = best.get(key)
            if held is None or kinds[i] < kinds[held]:
                best[key] = i
        kept = set(best.values())
        duplicates = len(extra) - len(best)
        dropped = array("q", sorted([*dropped, *(i for i in extra if i not in kept)]))
    kept_failures = {i for i in best.values() if scan.kinds[i] == FAILED}
    by_code: Counter[str] = Counter()
    for key, line, code in zip(scan.failed_keys, scan.failed_lines, scan.failed_codes, strict=True):
        if key not in multi or line in kept_failures:
            by_code[scan.codes[code]] += 1
    redo = len({k for k in scan.redo_keys if not index.has_key(k)})
    failed_redone = len({k for k in scan.failed_redone_keys if not index.has_key(k)})
    state = ResumeState(
        index=index,
        records=scan.records,
        done=len(index),
        failed=sum(by_code.values()),
        failed_by_code=dict(sorted(by_code.items())),
        redo=redo,
        failed_redone=failed_redone,
        duplicates=duplicates,
        superseded=scan.superseded,
        invalid=scan.invalid,
        torn_lines=scan.torn_lines,
        torn_bytes=scan.torn_bytes,
    )
    scan.keys, scan.kinds = array("q"), bytearray()  # the big per-line arrays go now
    return CompactionPlan(state, dropped)


def _sorted_unique(runs: Iterable[memoryview]) -> tuple[array[int], set[int]]:
    """Radix by the top byte, then sort each bucket: ~2x faster than one big sort and
    never holds more than one bucket as Python ints. Also returns the repeated keys."""
    buckets: list[array[int]] = [array("q") for _ in range(256)]
    for run in runs:
        for key in run:
            buckets[(key >> 56) & 255].append(key)
    out: array[int] = array("q")
    multi: set[int] = set()
    for top in (*range(128, 256), *range(128)):  # signed order: negatives first
        bucket = sorted(buckets[top])
        buckets[top] = array("q")
        unique = list(dict.fromkeys(bucket))
        if len(unique) != len(bucket):
            multi.update(k for k, n in Counter(bucket).items() if n > 1)
        out.extend(unique)
    return array("q", out), multi  # the copy drops extend's over-allocation


def keep_lines(block: bytes, first: int, dropped: array[int]) -> bytes:
    """``block`` is whole lines from line ``first`` on; leave out the dropped ones."""
    count = block.count(b"\n")
    lo = bisect_left(dropped, first)
    hi = bisect_left(dropped, first + count, lo)
    if lo == hi:
        return block
    skip = {d - first for d in dropped[lo:hi]}
    kept = [line for i, line in enumerate(block.split(b"\n")[:count]) if i not in skip]
    return b"\n".join(kept) + b"\n" if kept else b""


def line_blocks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Re-cut chunks into blocks of whole lines; a torn tail is never yielded."""
    tail = b""
    for chunk in chunks:
        data = tail + chunk if tail else chunk
        cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        if cut:
            yield data[:cut]
