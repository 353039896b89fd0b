"""Records past what the ledger covers -> the entries they should have had (pure: no I/O).

A ``TailScan`` is fed the bytes of one output from an offset on (the end of the
furthest record the ledger points at there) and gives, for each ok record that
carries what keys it (``id``, ``operation``, ``content``, ``params_digest``), the
entry the run's ``LedgerSink`` would have written had the run lived: the same keys
(``Ledger.keys_of``) and the record's own (output, offset, length). It never has to
know tonight's parameters: the record names the digest it was made with.

Not indexed, and counted: error records (the ledger holds none), ok records without
an identity (the run could not key them either), lines that are not records, and a
torn last line (a kill mid-write; only an S3 part uploaded from the spool keeps one).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from batchrek.ledger._entry import COVERED_KEY
from batchrek.ledger._keys import content_key, id_key
from batchrek.ledger._segments import DurableRecord

__all__ = ["TailCounts", "TailScan"]


@dataclass(slots=True)
class TailCounts:
    indexed: int = 0
    errors: int = 0  # error records: never in the ledger
    unkeyed: int = 0  # ok records without content identity or parameters digest
    unreadable: int = 0  # lines that are not a record
    torn: int = 0  # an unterminated last line

    def add(self, other: TailCounts) -> None:
        self.indexed += other.indexed
        self.errors += other.errors
        self.unkeyed += other.unkeyed
        self.unreadable += other.unreadable
        self.torn += other.torn


class TailScan:
    """One output's uncovered bytes, fed in order from ``start`` (see the module doc)."""

    def __init__(self, output: str, start: int) -> None:
        self.output = output
        self.counts = TailCounts()
        self.end = start  # just past the last whole line fed
        self.indexed_end = start  # just past the last record indexed
        self._carry = b""

    def feed(self, chunk: bytes) -> list[DurableRecord]:
        """The entries of the whole lines completed by ``chunk``."""
        data = self._carry + chunk if self._carry else chunk
        whole = data.rfind(b"\n") + 1
        self._carry = data[whole:]
        found: list[DurableRecord] = []
        at = 0
        while at < whole:
            stop = data.index(b"\n", at) + 1
            entry = self._entry(data[at:stop], self.end + at)
            if entry is not None:
                found.append(entry)
            at = stop
        self.end += whole
        if found:
            self.indexed_end = found[-1].offset + found[-1].length
        return found

    def finish(self) -> DurableRecord | None:
        """Call after the last chunk. A mark covering the output to its end (see
        ``COVERED_KEY``) when something after the last record indexed was read, so the
        next catch-up does not read it again; else None."""
        if self._carry:
            self.counts.torn += 1
        stop = self.end + len(self._carry)
        self._carry = b""
        if stop <= self.indexed_end:
            return None
        return DurableRecord(COVERED_KEY, COVERED_KEY, self.output, stop, 0)

    def _entry(self, line: bytes, offset: int) -> DurableRecord | None:
        if not line.strip():
            return None
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            self.counts.unreadable += 1
            return None
        if not isinstance(record, dict):
            self.counts.unreadable += 1
            return None
        status = record.get("status")
        if status != "ok":
            if status == "error":
                self.counts.errors += 1
            else:
                self.counts.unreadable += 1
            return None
        op, item, content, params = (
            record.get("operation"),
            record.get("id"),
            record.get("content"),
            record.get("params_digest"),
        )
        if not (
            isinstance(op, str)
            and isinstance(item, str)
            and isinstance(content, str)
            and isinstance(params, str)
        ):
            self.counts.unkeyed += 1
            return None
        self.counts.indexed += 1
        return DurableRecord(
            id_key(op, item), content_key(op, params, content), self.output, offset, len(line)
        )

    def __repr__(self) -> str:
        return f"TailScan({self.output!r}, end={self.end}, counts={self.counts})"
