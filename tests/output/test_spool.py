"""The S3 output's local spool, its recovery, and the sink's retries and stall,
against moto's S3 server (faults from a wrapper around the real client)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aioboto3
import pytest

from batchrek.call import Breakers, BreakerSettings, RetryPolicy, TransientRetry
from batchrek.clock import FakeClock
from batchrek.errors import ConfigError, OutputFailed
from batchrek.output import S3PartSink, Spool, recover_spool
from batchrek.output.s3parts import PART_BYTES
from batchrek.s3uri import parse_s3_prefix
from tests.call.test_retry import raw_client_error
from tests.conftest import S3Bed
from tests.output.test_s3sink import objects, rec

pytestmark = pytest.mark.anyio

SLOW_DOWN = raw_client_error("SlowDown", 503)


@pytest.fixture
async def client(s3: S3Bed) -> AsyncIterator[Any]:
    session = aioboto3.Session()
    async with session.client("s3", endpoint_url=s3.endpoint_url, region_name="us-east-1") as c:
        yield c


@pytest.fixture
def uri(s3: S3Bed) -> str:
    return f"s3://{s3.bucket_use1}/spool-tests/{uuid.uuid4().hex}/"


@pytest.fixture
def spool(tmp_path: Path, uri: str) -> Iterator[Spool]:
    spool = Spool(str(tmp_path / "spool"), uri, "0000")
    spool.open()
    yield spool
    spool.close()


class Flaky:
    """The real client, except that the first ``fail`` writes answer SlowDown."""

    WRITES = ("put_object", "upload_part", "complete_multipart_upload", "create_multipart_upload")

    def __init__(self, client: Any, fail: int) -> None:
        self._client = client
        self.fail = fail
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name not in self.WRITES:
            return method

        async def call(**kwargs: Any) -> Any:
            if self.refused < self.fail:
                self.refused += 1
                raise SLOW_DOWN
            return await method(**kwargs)

        return call


def retrier(attempts: int = 4) -> TransientRetry:
    clock = FakeClock()
    settings = BreakerSettings(threshold=100, outage_timeout_s=60.0)
    return TransientRetry(
        RetryPolicy(max_attempts=attempts), Breakers(settings, clock=clock), clock=clock
    )


def put(path: str, data: bytes) -> None:
    Path(path).write_bytes(data)


def gone(folder: str) -> None:
    shutil.rmtree(folder)


def read(path: str) -> bytes:
    return Path(path).read_bytes()


def spooled(spool: Spool) -> list[str]:
    return sorted(os.listdir(spool.dir)) if os.path.isdir(spool.dir) else []


async def test_records_wait_in_the_spool_until_their_part_is_completed(
    client: Any, uri: str, spool: Spool
) -> None:
    sink = S3PartSink(client, uri, part_records=10, spool=spool)
    for n in range(3):
        await sink.write(rec(f"i{n}"))
    await sink.flush()
    (name,) = spool.leftovers()
    assert read(spool.path(name)) == b"".join(rec(f"i{n}") for n in range(3))
    await sink.aclose()
    assert spool.leftovers() == []


async def test_slow_down_on_a_part_upload_is_retried(
    client: Any, uri: str, s3: S3Bed, spool: Spool
) -> None:
    flaky = Flaky(client, fail=2)
    sink = S3PartSink(flaky, uri, part_records=2, spool=spool, retry=retrier())
    for n in range(4):
        await sink.write(rec(f"i{n}"))
    await sink.aclose()
    assert (len(b"".join(objects(s3, uri).values()).splitlines()), flaky.refused) == (4, 2)


async def test_an_upload_that_never_succeeds_stalls_the_sink_into_the_spool(
    client: Any, uri: str, s3: S3Bed, spool: Spool
) -> None:
    stalls: list[str] = []
    sink = S3PartSink(
        Flaky(client, fail=10_000),
        uri,
        part_records=2,
        spool=spool,
        retry=retrier(attempts=2),
        on_stall=lambda exc, where: stalls.append(where),
    )
    for n in range(5):
        await sink.write(rec(f"i{n}"))
    await sink.aclose()
    kept = b"".join(read(spool.path(n)) for n in spool.leftovers())
    assert (len(stalls), objects(s3, uri), kept) == (
        1,
        {},
        b"".join(rec(f"i{n}") for n in range(5)),
    )


async def test_without_a_spool_a_failed_upload_fails_the_sink(client: Any, uri: str) -> None:
    sink = S3PartSink(Flaky(client, fail=10_000), uri, part_records=1, retry=retrier(2))
    with pytest.raises(OutputFailed, match="SlowDown"):
        await sink.write(rec("a"))


async def test_recovery_uploads_a_leftover_spool_file_as_its_part(
    client: Any, uri: str, s3: S3Bed, spool: Spool
) -> None:
    name = "part-20260101T000000Zabcdef-0000-000003.jsonl"
    body = rec("a") + rec("b")
    put(spool.path(name), body)
    uploaded = await recover_spool(client, uri, spool)
    assert (uploaded, objects(s3, uri), spool.leftovers()) == (1, {name: body}, [])


async def test_recovery_drops_a_spool_file_whose_part_was_completed(
    client: Any, uri: str, s3: S3Bed, spool: Spool
) -> None:
    name = "part-20260101T000000Zabcdef-0000-000003.jsonl"
    bucket, prefix = parse_s3_prefix(uri)
    s3.put(bucket, prefix + name, rec("a") + rec("b"))
    put(spool.path(name), rec("a"))
    uploaded = await recover_spool(client, uri, spool)
    assert (uploaded, objects(s3, uri), spool.leftovers()) == (
        0,
        {name: rec("a") + rec("b")},
        [],
    )


async def test_recovery_leaves_other_shards_spool_files_alone(
    client: Any, uri: str, spool: Spool
) -> None:
    other = "part-20260101T000000Zabcdef-0001-000000.jsonl"
    put(spool.path(other), rec("a"))
    await recover_spool(client, uri, spool)
    assert other in spooled(spool)


async def test_recovery_streams_a_big_spool_file_as_a_multipart_upload(
    client: Any, uri: str, s3: S3Bed, spool: Spool
) -> None:
    name = "part-20260101T000000Zabcdef-0000-000000.jsonl"
    line = rec("x" * 1000)
    body = line * (PART_BYTES // len(line) + 50)
    put(spool.path(name), body)
    await recover_spool(client, uri, spool)
    assert objects(s3, uri)[name] == body


def test_a_second_run_on_the_same_output_and_shard_is_refused(
    tmp_path: Path, uri: str, spool: Spool
) -> None:
    with pytest.raises(ConfigError, match="another batchrek run on this machine"):
        Spool(str(tmp_path / "spool"), uri, "0000").open()


def test_an_unusable_spool_folder_says_which_setting_to_change(tmp_path: Path, uri: str) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="set spool_dir"):
        Spool(str(blocker), uri, "0000").open()


async def test_a_spool_the_disk_refuses_is_dropped_and_s3_still_gets_every_record(
    client: Any, uri: str, s3: S3Bed, spool: Spool
) -> None:
    sink = S3PartSink(client, uri, part_records=10, spool=spool)
    await sink.write(rec("a"))
    gone(spool.dir)  # the spool's folder vanishes before its first batch lands
    await sink.write(rec("b"))
    await sink.flush()
    await sink.aclose()
    assert sorted(b"".join(objects(s3, uri).values()).splitlines()) == [
        rec("a").strip(),
        rec("b").strip(),
    ]
