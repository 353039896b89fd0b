"""The ledger's on-disk format and in-memory index: compact, torn-tail safe, a union."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchrek.ledger import (
    ENTRY_BYTES,
    DurableRecord,
    LedgerIndex,
    LocalSegmentWriter,
    Pointer,
    Segment,
    load_local_segments,
    new_segment_name,
    pack_entry,
)


def _entries(n: int, *, base: int = 1, output: int = 0) -> bytes:
    return b"".join(pack_entry(base + i, 10_000 + base + i, output, 100 * i, 50) for i in range(n))


def test_an_entry_is_32_bytes_on_disk() -> None:
    assert len(pack_entry(2**64 - 1, 2**64 - 1, 2**24 - 1, 2**40 - 1, 2**32 - 1)) == 32


def test_the_index_holds_32_bytes_per_entry_in_memory() -> None:
    index = LedgerIndex.build([Segment("seg-a", ["out.jsonl"], _entries(1000))])
    assert (len(index), index.nbytes / len(index)) == (1000, 32.0)


def test_offsets_over_40_bits_are_refused() -> None:
    with pytest.raises(ValueError, match="40 bits"):
        pack_entry(1, 2, 0, 2**40, 10)


def test_a_pair_is_found_by_its_id_key_with_its_content_key() -> None:
    index = LedgerIndex.build([Segment("seg-a", ["out.jsonl"], _entries(10))])
    assert (index.content_of(5), index.content_of(999)) == (10_005, None)


def test_a_record_is_found_by_its_content_key_with_its_location() -> None:
    index = LedgerIndex.build([Segment("seg-a", ["a.jsonl", "b.jsonl"], _entries(10, output=1))])
    assert index.pointers(10_004) == [Pointer("b.jsonl", 300, 50)]


def test_a_torn_last_entry_is_cut_off_and_the_rest_load() -> None:
    data = _entries(10)[: -ENTRY_BYTES // 2]
    index = LedgerIndex.build([Segment("seg-a", ["o"], data)])
    assert (len(index), index.stats.torn_bytes, index.content_of(9)) == (9, 16, 10_009)


def test_a_zero_filled_tail_is_rejected_by_the_check() -> None:
    index = LedgerIndex.build([Segment("seg-a", ["o"], _entries(3) + bytes(ENTRY_BYTES * 2))])
    assert (len(index), index.stats.rejected) == (3, 2)


def test_a_flipped_bit_rejects_the_entry() -> None:
    data = bytearray(_entries(3))
    data[ENTRY_BYTES + 3] ^= 0x10
    index = LedgerIndex.build([Segment("seg-a", ["o"], bytes(data))])
    assert (len(index), index.content_of(2)) == (2, None)


def test_an_entry_naming_an_output_the_table_lacks_is_rejected() -> None:
    # The output table is written before entries; a missing name means a torn table.
    index = LedgerIndex.build([Segment("seg-a", [], _entries(2))])
    assert (len(index), index.stats.rejected) == (0, 2)


def test_segments_load_as_their_union_with_outputs_kept_apart() -> None:
    one = Segment("seg-1-0000", ["shard0.jsonl"], _entries(3, base=1))
    two = Segment("seg-1-0001", ["shard1.jsonl"], _entries(3, base=100))
    index = LedgerIndex.build([one, two])
    assert (len(index), index.pointers(10_101)[0].output, index.pointers(10_002)[0].output) == (
        6,
        "shard1.jsonl",
        "shard0.jsonl",
    )


def test_the_newest_segment_wins_for_a_pair_seen_twice() -> None:
    old = Segment("seg-20260101", ["o"], pack_entry(7, 111, 0, 0, 10))
    new = Segment("seg-20260102", ["o"], pack_entry(7, 222, 0, 0, 10))
    index = LedgerIndex.build([new, old])  # given out of order on purpose
    assert (len(index), index.content_of(7)) == (1, 222)


def test_an_empty_ledger_answers_nothing() -> None:
    index = LedgerIndex.build([])
    assert (len(index), index.content_of(1), index.pointers(1)) == (0, None, [])


@pytest.mark.anyio
async def test_a_local_segment_writes_outputs_before_entries_and_reads_back(
    tmp_path: Path,
) -> None:
    writer = LocalSegmentWriter(tmp_path, new_segment_name(0))
    await writer.append([DurableRecord(1, 11, "/x/a.jsonl", 0, 40)])
    await writer.append(
        [DurableRecord(2, 22, "/x/b.jsonl", 0, 41), DurableRecord(3, 33, "/x/a.jsonl", 40, 42)]
    )
    await writer.aclose()
    (segment,) = await load_local_segments(tmp_path)
    index = LedgerIndex.build([segment])
    assert (segment.outputs, len(segment.data), index.pointers(33)) == (
        ["/x/a.jsonl", "/x/b.jsonl"],
        3 * ENTRY_BYTES,
        [Pointer("/x/a.jsonl", 40, 42)],
    )


@pytest.mark.anyio
async def test_two_writers_never_share_a_segment_and_both_load(tmp_path: Path) -> None:
    stamp = "20261121T010000Zabcdef"
    writers = [LocalSegmentWriter(tmp_path, new_segment_name(s, stamp=stamp)) for s in (0, 1)]
    for shard, writer in enumerate(writers):
        await writer.append([DurableRecord(shard + 1, 50 + shard, f"/o{shard}", 0, 9)])
        await writer.aclose()
    segments = await load_local_segments(tmp_path)
    index = LedgerIndex.build(segments)
    assert (len(segments), index.content_of(1), index.content_of(2)) == (2, 50, 51)


@pytest.mark.anyio
async def test_a_missing_ledger_directory_is_an_empty_ledger(tmp_path: Path) -> None:
    assert await load_local_segments(tmp_path / "nope") == []
