"""The content ledger: what was analysed before, across runs and outputs.

    item ──identity──▶ Ledger.check ──▶ unchanged: skip │ reused: copy the record │
                                        new / changed: analyse
    result ──durable in the output──▶ LedgerSink ──▶ this run's segment
    output past the ledger's coverage (a killed run's) ──catch_up──▶ this run's segment

Keyed by (operation, parameters digest, content identity), 32 bytes an entry on disk
and in memory, append-only segments (one per run and shard), loaded as their union.
See ``_entry`` for the format, ``_index`` for the in-memory layout, ``_segments`` for
durability, ``_gate`` for the decisions and ``_catchup`` for what a kill left out.
"""

from __future__ import annotations

from batchrek.ledger._catchup import CatchUp, Tail, catch_up, uncovered
from batchrek.ledger._entry import COVERED_KEY, ENTRY_BYTES, pack_entry
from batchrek.ledger._gate import Check, Ledger, Verdict
from batchrek.ledger._identity import (
    Identity,
    bytes_identity,
    head_identity,
    identify,
    known_identity,
)
from batchrek.ledger._index import LedgerIndex, LoadStats, Pointer, Segment
from batchrek.ledger._journal import LedgerKeys, LedgerSink, PositionedSink
from batchrek.ledger._keys import content_key, id_key, params_digest
from batchrek.ledger._open import LedgerRun, load_index, open_ledger, repair_torn_tail
from batchrek.ledger._records import RecordReader
from batchrek.ledger._segments import (
    DurableRecord,
    LocalSegmentWriter,
    S3SegmentWriter,
    SegmentWriter,
    as_segment,
    load_local_segments,
    load_s3_segments,
    new_segment_name,
)
from batchrek.ledger._tail import TailCounts, TailScan

__all__ = [
    "COVERED_KEY",
    "ENTRY_BYTES",
    "CatchUp",
    "Check",
    "DurableRecord",
    "Identity",
    "Ledger",
    "LedgerIndex",
    "LedgerKeys",
    "LedgerRun",
    "LedgerSink",
    "LoadStats",
    "LocalSegmentWriter",
    "Pointer",
    "PositionedSink",
    "RecordReader",
    "S3SegmentWriter",
    "Segment",
    "SegmentWriter",
    "Tail",
    "TailCounts",
    "TailScan",
    "Verdict",
    "as_segment",
    "bytes_identity",
    "catch_up",
    "content_key",
    "head_identity",
    "id_key",
    "identify",
    "known_identity",
    "load_index",
    "load_local_segments",
    "load_s3_segments",
    "new_segment_name",
    "open_ledger",
    "pack_entry",
    "params_digest",
    "repair_torn_tail",
    "uncovered",
]
