"""The run stamp that orders segments: a run's segment sorts after every segment it
loaded, whatever its clock says, so its entries supersede the ones it read.

The regression: stamps had one-second resolution and a random tail, so two nights
started within one second sorted by chance half the time, the older night's entry won,
and the third night billed a changed image again."""

from __future__ import annotations

import calendar
import time
from pathlib import Path

import pytest

from batchrek.call.operations import build_operations
from batchrek.ledger import (
    DurableRecord,
    LedgerIndex,
    LocalSegmentWriter,
    Segment,
    load_local_segments,
    open_ledger,
    pack_entry,
)
from batchrek.ledger._stamp import new_segment_name, newest_stamp
from batchrek.output.s3parts import new_run_stamp
from batchrek.stamps import new_stamp, stamp_micros

NOW_NS = calendar.timegm((2026, 11, 27, 20, 11, 17, 0, 0, 0)) * 10**9 + 250_000_000


def test_a_stamp_is_utc_to_the_microsecond_and_reads_back() -> None:
    stamp = new_stamp(now_ns=NOW_NS)
    assert (stamp[:23], len(stamp)) == ("20261127T201117.250000Z", 29)
    assert stamp_micros(stamp) == NOW_NS // 1000


def test_stamps_taken_in_one_tick_still_sort_in_the_order_taken() -> None:
    stamps = [new_stamp(now_ns=NOW_NS)]
    for _ in range(200):
        stamps.append(new_stamp(stamps[-1], now_ns=NOW_NS))
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


def test_a_clock_behind_the_ledger_still_sorts_after_what_it_loaded() -> None:
    ahead = new_stamp(now_ns=NOW_NS + 3600 * 10**9)  # the pod that wrote it was an hour ahead
    mine = new_stamp(ahead, now_ns=NOW_NS)
    assert mine > ahead
    assert stamp_micros(mine) == stamp_micros(ahead) + 1  # type: ignore[operator]


def test_a_name_of_the_older_form_counts_as_the_end_of_its_second() -> None:
    older = "20261127T201117Zab12cd"  # one-second stamps, before the microseconds
    mine = new_stamp(older, now_ns=NOW_NS)  # the same second
    assert mine > older
    assert mine.startswith("20261127T201118.000000Z")


def test_the_newest_stamp_is_by_time_and_other_names_are_ignored() -> None:
    names = [
        new_segment_name(3, 7, stamp="20261127T201117Zab12cd"),
        new_segment_name(0, stamp="20261127T201117.900000Zffffff"),
        new_segment_name(1, stamp="20261127T201116.999999Z000000"),
        "~caught-up",
        "seg-a",
        "seg-not-a-stamp",
    ]
    assert newest_stamp(names) == "20261127T201117Zab12cd"
    assert newest_stamp(["seg-a", "other"]) is None
    assert new_stamp(None, now_ns=NOW_NS)[:23] == "20261127T201117.250000Z"


@pytest.mark.anyio
async def test_a_run_after_a_segment_from_a_fast_clock_still_has_the_newest_entry(
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "ledger"
    future = new_segment_name(0, stamp=new_stamp(now_ns=time.time_ns() + 86_400 * 10**9))
    old = LocalSegmentWriter(ledger, future)
    await old.append([DurableRecord(7, 111, "/night-1.jsonl", 0, 10)])
    await old.aclose()
    ops = build_operations(["detect_labels"], {})
    run = await open_ledger(str(ledger), s3=None, ops=ops, shard=0)
    await run.segment.append([DurableRecord(7, 222, "/night-2.jsonl", 0, 10)])
    await run.segment.aclose()
    index = LedgerIndex.build(await load_local_segments(ledger))
    assert (len(index), index.content_of(7)) == (1, 222)


def test_after_an_older_name_of_the_same_second_the_index_takes_the_new_entry() -> None:
    older = Segment("seg-20261127T201117Zab12cd-0000-000000", ["o"], pack_entry(7, 111, 0, 0, 10))
    name = new_segment_name(0, stamp=new_stamp(newest_stamp([older.name]), now_ns=NOW_NS))
    newer = Segment(name, ["o"], pack_entry(7, 222, 0, 0, 10))
    assert LedgerIndex.build([newer, older]).content_of(7) == 222


@pytest.mark.anyio
async def test_a_ledger_runs_part_files_take_its_stamp_after_a_fast_clocks_segments(
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "ledger"
    ahead = new_stamp(now_ns=time.time_ns() + 86_400 * 10**9)
    old = LocalSegmentWriter(ledger, new_segment_name(0, stamp=ahead))
    await old.append([DurableRecord(7, 111, "s3://b/out/part-x-0000-000000.jsonl", 0, 10)])
    await old.aclose()
    ops = build_operations(["detect_labels"], {})
    run = await open_ledger(str(ledger), s3=None, ops=ops, shard=0)
    await run.segment.aclose()
    # The fast pod wrote its parts as ``ahead``; this run's sort after them.
    assert run.part_stamp.isalnum()
    assert run.part_stamp > ahead.replace(".", "") > new_run_stamp()
