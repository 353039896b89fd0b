"""The ledger catch-up's pieces: what is not covered, the scan of an uncovered tail
(errors, records without identity and torn lines earn no entry), and a catch-up of a
local file and of S3 part files (moto's server) that reads only what is uncovered."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aioboto3
import orjson
import pytest

from batchrek.call.operations import build_operations
from batchrek.ledger import (
    COVERED_KEY,
    DurableRecord,
    LedgerIndex,
    LocalSegmentWriter,
    S3SegmentWriter,
    Segment,
    Tail,
    TailScan,
    as_segment,
    catch_up,
    content_key,
    id_key,
    load_index,
    load_local_segments,
    load_s3_segments,
    open_ledger,
    pack_entry,
    uncovered,
)
from tests.conftest import S3Bed

PARAMS = "0123456789abcdef"


def _ok(item: str, content: str = "etag:e/1", **extra: Any) -> bytes:
    record = {"id": item, "operation": "detect_labels", "status": "ok", "response": {}}
    record |= {"content": content, "params_digest": PARAMS, **extra}
    return orjson.dumps(record) + b"\n"


def _error(item: str) -> bytes:
    record = {"id": item, "operation": "detect_labels", "status": "error", "error": {}}
    return orjson.dumps(record) + b"\n"


def _entry(item: str, offset: int, length: int, output: str = "/o.jsonl") -> DurableRecord:
    keys = id_key("detect_labels", item), content_key("detect_labels", PARAMS, "etag:e/1")
    return DurableRecord(*keys, output, offset, length)


# -- what is not covered ---------------------------------------------------------------


def test_only_outputs_past_their_coverage_are_read_and_only_from_its_end() -> None:
    parts = [("s3://b/p/part-1", 300), ("s3://b/p/part-2", 500), ("s3://b/p/part-3", 80)]
    covered = {"s3://b/p/part-1": 300, "s3://b/p/part-2": 200}
    assert uncovered(parts, covered) == [
        Tail("s3://b/p/part-2", 200, 500),
        Tail("s3://b/p/part-3", 0, 80),
    ]


def test_coverage_counts_superseded_entries_and_marks_but_marks_are_no_pairs() -> None:
    old = pack_entry(1, 11, 0, 0, 100)  # superseded below by pair 1's newer entry
    newer = pack_entry(1, 12, 0, 500, 50) + pack_entry(COVERED_KEY, COVERED_KEY, 1, 900, 0)
    index = LedgerIndex.build(
        [
            Segment("seg-a", ["/a.jsonl"], old),
            Segment("seg-b", ["/b.jsonl", "/c.jsonl"], newer),
        ]
    )
    assert index.coverage("/") == {"/a.jsonl": 100, "/b.jsonl": 550, "/c.jsonl": 900}
    assert (len(index), index.content_of(COVERED_KEY)) == (1, None)


def test_an_output_named_without_any_entry_is_covered_to_0() -> None:
    index = LedgerIndex.build([Segment("seg-a", ["/a.jsonl"], b"")])
    assert index.coverage("/a.jsonl") == {"/a.jsonl": 0}


# -- the scan of an uncovered tail -----------------------------------------------------


def test_an_ok_record_gets_the_entry_the_run_would_have_written() -> None:
    line = _ok("cat")
    scan = TailScan("/o.jsonl", 1000)
    assert scan.feed(line) == [_entry("cat", 1000, len(line))]


def test_errors_unkeyed_records_and_non_records_earn_no_entry_and_are_counted() -> None:
    no_identity = orjson.dumps({"id": "x", "operation": "detect_labels", "status": "ok"}) + b"\n"
    data = _error("a") + no_identity + b"not json\n" + b"[1]\n" + _ok("b")
    scan = TailScan("/o.jsonl", 0)
    found = scan.feed(data)
    c = scan.counts
    assert [e.offset for e in found] == [len(data) - len(_ok("b"))]
    assert (c.indexed, c.errors, c.unkeyed, c.unreadable, c.torn) == (1, 1, 1, 2, 0)


def test_a_torn_last_line_is_not_indexed_and_the_mark_covers_it() -> None:
    data = _ok("a") + _ok("b")[:20]
    scan = TailScan("/o.jsonl", 0)
    found = scan.feed(data)
    mark = scan.finish()
    assert (len(found), scan.counts.torn) == (1, 1)
    assert mark == DurableRecord(COVERED_KEY, COVERED_KEY, "/o.jsonl", len(data), 0)


def test_no_mark_when_the_tail_ends_with_a_record_indexed() -> None:
    scan = TailScan("/o.jsonl", 0)
    scan.feed(_error("a") + _ok("b"))
    assert scan.finish() is None


def test_records_split_across_chunks_give_the_same_entries() -> None:
    data = _ok("a") + _error("b") + _ok("c", reused_from={"id": "a"})
    whole = TailScan("/o.jsonl", 7)
    expected = whole.feed(data)
    pieces = TailScan("/o.jsonl", 7)
    found = [e for i in range(0, len(data), 13) for e in pieces.feed(data[i : i + 13])]
    assert (found, pieces.finish(), len(expected)) == (expected, None, 2)


# -- a catch-up of a local file ----------------------------------------------------------


@pytest.mark.anyio
async def test_a_file_is_read_only_past_its_coverage_then_not_again(tmp_path: Path) -> None:
    out, ledger = tmp_path / "out.jsonl", tmp_path / "ledger"
    first, rest = _ok("a"), _ok("b", content="etag:f/2") + _error("c")
    out.write_bytes(first + rest)
    night1 = LocalSegmentWriter(ledger, "seg-1")
    await night1.append([_entry("a", 0, len(first), str(out))])
    await night1.aclose()

    async def run(name: str) -> Any:
        index = await load_index(str(ledger), s3=None)
        writer = LocalSegmentWriter(ledger, name)
        try:
            return await catch_up(index, str(out), writer, s3=None, shard=0)
        finally:
            await writer.aclose()

    caught = await run("seg-2")
    again = await run("seg-3")
    index = LedgerIndex.build(await load_local_segments(ledger))
    b = content_key("detect_labels", PARAMS, "etag:f/2")
    assert (caught.counts.indexed, caught.counts.errors, caught.bytes_read) == (1, 1, len(rest))
    assert [p.offset for p in index.pointers(b)] == [len(first)]
    assert (again.outputs, again.bytes_read) == ([], 0)


@pytest.mark.anyio
async def test_a_dry_run_catch_up_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(_ok("a"))
    caught = await catch_up(LedgerIndex.empty(), str(out), None, s3=None, shard=0)
    assert (caught.counts.indexed, os.listdir(tmp_path)) == (1, ["out.jsonl"])


# -- a catch-up of S3 part files ---------------------------------------------------------


@pytest.fixture
async def s3c(s3: S3Bed) -> AsyncIterator[Any]:
    async with aioboto3.Session().client(
        "s3", endpoint_url=s3.endpoint_url, region_name="us-east-1"
    ) as client:
        yield client


@pytest.mark.anyio
async def test_only_the_shards_part_files_past_their_coverage_are_read(s3: S3Bed, s3c: Any) -> None:
    root = f"catchup/{uuid.uuid4()}/"
    out, ledger = f"s3://{s3.bucket_use1}/{root}out/", f"s3://{s3.bucket_use1}/{root}ledger/"
    covered, partly, missing = (
        f"{root}out/part-20261127T000000Zaaaaaa-0000-00000{n}.jsonl" for n in (0, 1, 2)
    )
    other_shard = f"{root}out/part-20261127T000000Zaaaaaa-0001-000000.jsonl"
    bodies = {
        covered: _ok("a"),
        partly: _ok("b") + _ok("c"),
        missing: _ok("d") + _ok("e")[:15],  # a spool upload with a torn tail
        other_shard: _ok("z"),
    }
    for key, body in bodies.items():
        s3.put(s3.bucket_use1, key, body)
    uri = f"s3://{s3.bucket_use1}/"
    night1 = [
        _entry("a", 0, len(_ok("a")), uri + covered),
        _entry("b", 0, len(_ok("b")), uri + partly),
    ]
    index = LedgerIndex.build([as_segment("seg-1", night1)])
    writer = S3SegmentWriter(s3c, ledger, shard=0)
    caught = await catch_up(index, out, writer, s3=s3c, shard=0)
    written = await load_s3_segments(s3c, ledger)
    await writer.aclose()
    assert caught.outputs == [uri + partly, uri + missing]
    assert caught.bytes_read == len(_ok("c")) + len(bodies[missing])
    assert (caught.counts.indexed, caught.counts.torn) == (2, 1)
    assert len(written) == 1  # durable on return: the chunk was written, not held
    caught_up = LedgerIndex.build(written)
    assert caught_up.coverage(uri) == {
        uri + partly: len(bodies[partly]),
        uri + missing: len(bodies[missing]),
    }


@pytest.mark.anyio
async def test_an_output_that_cannot_be_read_back_is_said_and_the_run_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ops = build_operations(["detect_labels"], {})
    run = await open_ledger(
        str(tmp_path / "ledger"), s3=None, ops=ops, shard=0, output="s3://bucket/out/"
    )
    await run.segment.aclose()
    assert run.ledger.caught_up.counts.indexed == 0
    assert "cannot read back s3://bucket/out/" in caplog.text
