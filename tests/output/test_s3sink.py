from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import orjson
import pytest

from batchrek.clock import FakeClock
from batchrek.errors import OutputFailed
from batchrek.output import S3PartSink, abort_stale_uploads, load_resume
from batchrek.output import s3parts as s3sink
from batchrek.output.resume import s3 as resume_s3
from batchrek.output.s3parts import MIN_PART_BYTES, new_run_stamp
from batchrek.s3uri import parse_s3_prefix
from tests.conftest import S3Bed

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(s3: S3Bed) -> AsyncIterator[Any]:
    session = aioboto3.Session()
    async with session.client("s3", endpoint_url=s3.endpoint_url, region_name="us-east-1") as c:
        yield c


@pytest.fixture
def uri(s3: S3Bed) -> str:
    return f"s3://{s3.bucket_use1}/sink-tests/{uuid.uuid4().hex}/"


def rec(item: str, *, op: str = "detect_labels", ok: bool = True, retryable: bool = False) -> bytes:
    record = {
        "id": item,
        "source": f"s3://b/{item}",
        "operation": op,
        "status": "ok" if ok else "error",
        "response": {} if ok else None,
        "error": None if ok else {"code": "E", "message": "m", "retryable": retryable},
    }
    return orjson.dumps(record) + b"\n"


def objects(s3: S3Bed, uri: str) -> dict[str, bytes]:
    bucket, prefix = parse_s3_prefix(uri)
    c = s3.client()
    listed = c.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {
        o["Key"][len(prefix) :]: c.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        for o in listed
    }


def pairs(s3: S3Bed, uri: str) -> Counter[tuple[str, str]]:
    lines = b"".join(objects(s3, uri).values()).splitlines()
    return Counter((r["id"], r["operation"]) for r in map(orjson.loads, lines))


async def test_part_files_roll_over_by_record_count(client: Any, s3: S3Bed, uri: str) -> None:
    sink = S3PartSink(client, uri, part_records=3, run_stamp="20250101T000000Zabc")
    for n in range(7):
        await sink.write(rec(f"i{n}"))
    await sink.aclose()
    names = sorted(objects(s3, uri))
    assert names == [f"part-20250101T000000Zabc-0000-{n:06d}.jsonl" for n in range(3)]


async def test_part_files_keep_the_records_in_order(client: Any, s3: S3Bed, uri: str) -> None:
    sink = S3PartSink(client, uri, part_records=3)
    for n in range(7):
        await sink.write(rec(f"i{n}"))
    await sink.aclose()
    body = b"".join(objects(s3, uri)[name] for name in sorted(objects(s3, uri)))
    assert body == b"".join(rec(f"i{n}") for n in range(7))


async def test_a_large_part_file_goes_up_as_a_multipart_upload(
    client: Any, s3: S3Bed, uri: str
) -> None:
    sink = S3PartSink(client, uri, part_bytes=MIN_PART_BYTES)
    big = [rec(f"i{n}" + "x" * 50_000) for n in range(60)]  # ~6 MB: id and source hold the padding
    for r in big:
        await sink.write(r)
    await sink.aclose()
    assert (sink.parts_uploaded, list(objects(s3, uri).values())) == (2, [b"".join(big)])


async def test_a_part_file_is_completed_once_old_enough(client: Any, s3: S3Bed, uri: str) -> None:
    clock = FakeClock()
    sink = S3PartSink(client, uri, part_seconds=10, clock=clock)
    await sink.write(rec("a"))
    clock.advance(10)
    await sink.flush()
    assert len(objects(s3, uri)) == 1


async def test_a_young_part_file_stays_open_on_a_durable_flush(
    client: Any, s3: S3Bed, uri: str
) -> None:
    clock = FakeClock()
    sink = S3PartSink(client, uri, part_seconds=10, clock=clock)
    await sink.write(rec("a"))
    clock.advance(5)
    await sink.flush(durable=True)
    assert objects(s3, uri) == {}


async def test_an_empty_sink_writes_no_object(client: Any, s3: S3Bed, uri: str) -> None:
    sink = S3PartSink(client, uri)
    await sink.aclose()
    assert objects(s3, uri) == {}


def test_part_bytes_below_the_s3_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        S3PartSink(object(), "s3://b/p/", part_bytes=1024)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [("s3://b/p/", ("b", "p/")), ("s3://b/p", ("b", "p/")), ("s3://b", ("b", ""))],
)
def test_the_output_prefix_is_a_folder(uri: str, expected: tuple[str, str]) -> None:
    assert parse_s3_prefix(uri) == expected


def test_run_stamps_sort_by_time_and_differ() -> None:
    a, b = new_run_stamp(), new_run_stamp()
    assert (a[:22] <= b[:22], a[21], a != b, a.isalnum()) == (True, "Z", True, True)


async def test_resume_indexes_the_existing_part_files(client: Any, uri: str) -> None:
    sink = S3PartSink(client, uri, part_records=2)
    for n in range(5):
        await sink.write(rec(f"i{n}"))
    await sink.aclose()
    state = await load_resume(uri, s3=client)
    assert (state.done, all((f"i{n}", "detect_labels") in state for n in range(5))) == (5, True)


async def test_resume_of_an_empty_prefix_is_empty(client: Any, uri: str) -> None:
    state = await load_resume(uri, s3=client)
    assert len(state) == 0


async def test_resume_replaces_parts_with_superseded_records(
    client: Any, s3: S3Bed, uri: str
) -> None:
    sink = S3PartSink(client, uri, part_records=2)
    for r in (rec("a", ok=False, retryable=True), rec("b"), rec("c"), rec("d"), rec("a")):
        await sink.write(r)
    await sink.aclose()
    before = set(objects(s3, uri))
    state = await load_resume(uri, s3=client)
    after = set(objects(s3, uri))
    assert (state.objects_rewritten, len(before & after), len(after)) == (1, 2, 3)


async def test_resume_leaves_exactly_one_record_per_pair(client: Any, s3: S3Bed, uri: str) -> None:
    sink = S3PartSink(client, uri, part_records=2)
    for r in (
        rec("a", ok=False, retryable=True),
        rec("b"),
        rec("b"),
        rec("c", ok=False, retryable=True),
        rec("a"),
        rec("d", ok=False),
    ):
        await sink.write(r)
    await sink.aclose()
    await load_resume(uri, s3=client)
    expected = Counter([("a", "detect_labels"), ("b", "detect_labels"), ("d", "detect_labels")])
    assert pairs(s3, uri) == expected


async def test_resume_repairs_a_part_file_with_a_torn_tail(
    client: Any, s3: S3Bed, uri: str
) -> None:
    bucket, prefix = parse_s3_prefix(uri)
    s3.put(bucket, f"{prefix}part-20240101T000000Za-0000-000000.jsonl", rec("a") + rec("b")[:9])
    state = await load_resume(uri, s3=client)
    assert (state.torn_lines, list(objects(s3, uri).values())) == (1, [rec("a")])


async def test_resume_reads_only_its_own_shard(client: Any, uri: str) -> None:
    for shard, item in ((0, "mine"), (1, "theirs")):
        sink = S3PartSink(client, uri, shard=shard)
        await sink.write(rec(item))
        await sink.aclose()
    state = await load_resume(uri, s3=client, shard=0)
    assert (("mine", "detect_labels") in state, ("theirs", "detect_labels") in state) == (
        True,
        False,
    )


async def test_a_killed_sink_loses_only_its_open_part(client: Any, s3: S3Bed, uri: str) -> None:
    sink = S3PartSink(client, uri, part_records=5, part_bytes=MIN_PART_BYTES)
    for n in range(10):  # two part files, completed
        await sink.write(rec(f"i{n}"))
    for n in range(10, 13):  # the open one: a multipart upload already under way
        await sink.write(rec(f"i{n}" + "x" * 1_000_000))
    assert (sink.parts_uploaded, len(objects(s3, uri))) == (1, 2)
    # Kill: the sink is abandoned without aclose.
    state = await load_resume(uri, s3=client)
    done = {n for n in range(13) if (f"i{n}", "detect_labels") in state}
    assert (done, state.stale_uploads_aborted) == (set(range(10)), 1)


async def test_resume_aborts_the_stale_upload_for_good(client: Any, s3: S3Bed, uri: str) -> None:
    sink = S3PartSink(client, uri, part_bytes=MIN_PART_BYTES)
    for n in range(60):
        await sink.write(rec(f"i{n}" + "x" * 50_000))
    await load_resume(uri, s3=client)
    bucket, prefix = parse_s3_prefix(uri)
    listed = s3.client().list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    assert listed.get("Uploads", []) == []


async def test_aborting_stale_uploads_takes_only_this_shards_part_files(
    client: Any, s3: S3Bed, uri: str
) -> None:
    bucket, prefix = parse_s3_prefix(uri)
    raw = s3.client()
    stamp = new_run_stamp()
    for key in (
        f"part-{stamp}-0000-000001.jsonl",
        f"part-{stamp}-0001-000001.jsonl",  # another shard's: its own rerun aborts it
        "notes/big-upload.bin",  # not a part file of ours
    ):
        raw.create_multipart_upload(Bucket=bucket, Key=prefix + key)
    aborted = await abort_stale_uploads(client, uri, shard=0)
    left = raw.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    assert (aborted, sorted(u["Key"][len(prefix) :] for u in left)) == (
        1,
        ["notes/big-upload.bin", f"part-{stamp}-0001-000001.jsonl"],
    )


async def test_a_failed_upload_fails_the_sink(uri: str) -> None:
    class Broken:
        async def put_object(self, **kwargs: Any) -> Any:
            raise OSError("network down")

    sink = S3PartSink(Broken(), uri, part_records=1)  # type: ignore[arg-type]
    with pytest.raises(OutputFailed, match="network down"):
        await sink.write(rec("a"))
    with pytest.raises(OutputFailed, match="network down"):
        await sink.write(rec("b"))


def test_public_api_is_explicit() -> None:
    for module in (s3sink, resume_s3):
        assert all(hasattr(module, name) for name in module.__all__)
