"""The journal commits entries only for records the sink says are durable; the gate
gives each pair its verdict."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from batchrek.call.operations import build_operations
from batchrek.ledger import (
    DurableRecord,
    Identity,
    Ledger,
    LedgerIndex,
    LedgerKeys,
    LedgerSink,
    Segment,
    Verdict,
    content_key,
    id_key,
    pack_entry,
    params_digest,
    repair_torn_tail,
)
from batchrek.models import Item, LocalPath


class FakeSink:
    def __init__(self) -> None:
        self.offset = 0
        self.written = 0
        self.durable = 0

    async def write(self, record: bytes) -> None:
        self.offset += len(record)
        self.written += 1

    async def flush(self, *, durable: bool = False) -> None:
        if durable:
            self.durable = self.written

    async def aclose(self) -> None:
        self.durable = self.written

    def position(self) -> tuple[str, int]:
        return "/out.jsonl", self.offset

    @property
    def durable_records(self) -> int:
        return self.durable


class FakeSegment:
    def __init__(self) -> None:
        self.got: list[DurableRecord] = []
        self.closed = False

    async def append(self, records: Sequence[DurableRecord]) -> None:
        self.got.extend(records)

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.anyio
async def test_entries_wait_until_their_records_are_durable() -> None:
    sink, segment = FakeSink(), FakeSegment()
    journal = LedgerSink(sink, segment)
    await journal.write(b'{"a":1}\n', LedgerKeys(1, 11))
    await journal.flush()  # handed on, not fsynced: nothing may be claimed yet
    before = len(segment.got)
    await journal.flush(durable=True)
    await journal.write(b'{"b":22}\n', LedgerKeys(2, 22))
    await journal.flush()
    assert (before, segment.got) == (0, [DurableRecord(1, 11, "/out.jsonl", 0, 8)])


@pytest.mark.anyio
async def test_records_without_keys_take_space_but_earn_no_entry() -> None:
    sink, segment = FakeSink(), FakeSegment()
    journal = LedgerSink(sink, segment)
    await journal.write(b'{"error":1}\n')
    await journal.write(b'{"ok":1}\n', LedgerKeys(3, 33))
    await journal.aclose()
    assert (segment.got, segment.closed) == ([DurableRecord(3, 33, "/out.jsonl", 12, 9)], True)


OPS = build_operations(["detect_labels", "index_faces"], {"index_faces": {"CollectionId": "c"}})
LABELS, INDEX = OPS
ETAG = Identity("etag", "abc/10")


def _ledger(*pairs: tuple[str, str, Identity]) -> Ledger:
    params = {op.method: params_digest(op.method, op.params) for op in OPS}
    data = b"".join(
        pack_entry(id_key(m, item_id), content_key(m, params[m], str(ident)), 0, 100 * n, 50)
        for n, (item_id, m, ident) in enumerate(pairs)
    )
    return Ledger(LedgerIndex.build([Segment("seg-a", ["/o.jsonl"], data)]), OPS)


def _item(item_id: str) -> Item:
    return Item(item_id, LocalPath(f"/{item_id}.jpg"))


def test_same_id_same_content_is_unchanged() -> None:
    ledger = _ledger(("a", "detect_labels", ETAG))
    assert ledger.check(LABELS, "a", ETAG).verdict is Verdict.UNCHANGED


def test_same_id_other_content_is_changed() -> None:
    ledger = _ledger(("a", "detect_labels", ETAG))
    assert ledger.check(LABELS, "a", Identity("etag", "zzz/10")).verdict is Verdict.CHANGED


def test_same_content_under_another_id_is_reused_with_its_pointer() -> None:
    ledger = _ledger(("a", "detect_labels", ETAG))
    check = ledger.check(LABELS, "b", ETAG)
    assert (check.verdict, [p.offset for p in check.candidates]) == (Verdict.REUSED, [0])


def test_index_faces_never_reuses_across_ids() -> None:
    ledger = _ledger(("a", "index_faces", ETAG))
    assert ledger.check(INDEX, "b", ETAG).verdict is Verdict.NEW


def test_split_leaves_out_only_the_unchanged_operations() -> None:
    ledger = _ledger(("a", "detect_labels", ETAG))
    todo, checks = ledger.split(_item("a"), OPS, ETAG)
    assert (todo, list(checks)) == ((INDEX,), ["index_faces"])


def test_keys_are_earned_only_by_ok_results_with_an_identity() -> None:
    from batchrek.models import ErrorInfo, Result

    ledger = _ledger()
    ok = ledger.stamp(Result("a", "/a.jpg", "detect_labels", "ok", "bytes", 1, 1.0), ETAG)
    failed = ledger.stamp(
        Result("a", "/a.jpg", "detect_labels", "error", "bytes", 1, 1.0, error=ErrorInfo("X", "")),
        ETAG,
    )
    assert ledger.keys_of(ok) == LedgerKeys(
        id_key("detect_labels", "a"),
        content_key("detect_labels", params_digest("detect_labels", {}), "etag:abc/10"),
    )
    assert ledger.keys_of(failed) is None


def test_a_torn_last_line_of_an_output_is_cut_before_appending(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    out.write_bytes(b'{"a":1}\n{"b":2}\n{"c":')
    assert (repair_torn_tail(str(out)), out.read_bytes()) == (5, b'{"a":1}\n{"b":2}\n')
