"""Manifests on S3 and prefix listings, against the moto S3 server."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import pytest
from botocore.exceptions import ClientError
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from batchrek.errors import ManifestUnreadable
from batchrek.manifest import read_manifest
from batchrek.models import Item, ManifestProblem, S3Ref
from tests.conftest import S3Bed

pytestmark = pytest.mark.anyio

PREFIX = "manifest-tests/s3"
LISTED = 1100  # more than one ListObjectsV2 page (1000 keys)


@pytest.fixture(scope="module")
async def s3c(s3: S3Bed) -> AsyncIterator[Any]:
    session = aioboto3.Session()
    async with session.client(
        "s3", endpoint_url=s3.endpoint_url, region_name="us-east-1"
    ) as client:
        yield client


@pytest.fixture(scope="module")
def listing(s3: S3Bed) -> str:
    """A prefix of LISTED tiny images plus non-images.

    Seeded straight into the in-process moto backend that serves the HTTP server:
    1,100 HTTP puts cost ~8 s on a shared 2-CPU box, and what is under test (the
    paginated listing) still goes over HTTP to the real server.
    """
    root = f"{PREFIX}/listing/"
    keys = [f"{root}img-{i:05d}.jpg" for i in range(LISTED)]
    keys += [f"{root}notes.txt", f"{root}sub/", f"{root}sub/deep.PNG"]
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for key in keys:
        backend.put_object(s3.bucket_use1, key, b"x")
    return f"s3://{s3.bucket_use1}/{root}"


@pytest.fixture(scope="module")
async def listed(listing: str, s3c: Any) -> list[Item | ManifestProblem]:
    """The listing read once: moto takes about a second per 1,100-key listing."""
    return await _read(listing, s3c)


async def _read(spec: str, s3c: Any, **kwargs: Any) -> list[Item | ManifestProblem]:
    return [record async for record in read_manifest(spec, s3=s3c, **kwargs)]


async def test_prefix_listing_follows_every_page(listed: list[Item | ManifestProblem]) -> None:
    assert len(listed) == LISTED + 1


async def test_prefix_listing_keeps_image_extensions_only(
    listing: str, listed: list[Item | ManifestProblem]
) -> None:
    assert [r.id for r in listed if not r.id.endswith(".jpg")] == [f"{listing}sub/deep.PNG"]


async def test_prefix_listing_carries_size_and_etag(
    listed: list[Item | ManifestProblem], s3: S3Bed
) -> None:
    first = listed[0]
    assert isinstance(first, Item)
    assert (first.source, first.size, first.etag, first.line) == (
        S3Ref(s3.bucket_use1, f"{PREFIX}/listing/img-00000.jpg"),
        1,
        "9dd4e461268c8034f5c8564e155c67a6",  # md5(b"x")
        1,
    )


async def test_forced_prefix_format_lists_without_a_trailing_slash(listing: str, s3c: Any) -> None:
    records = await _read(listing.rstrip("/") + "/sub", s3c, fmt="s3prefix")
    assert [r.id for r in records] == [f"{listing}sub/deep.PNG"]


async def test_listing_a_missing_bucket_is_unreadable(s3c: Any) -> None:
    with pytest.raises(ManifestUnreadable, match="cannot list"):
        await _read("s3://no-such-bucket-batchrek/", s3c)


async def test_jsonl_manifest_on_s3_is_streamed(s3: S3Bed, s3c: Any) -> None:
    lines = b"".join(b'{"source-ref": "s3://b/%05d.jpg", "n": %d}\n' % (i, i) for i in range(5000))
    s3.put(s3.bucket_use1, f"{PREFIX}/m.jsonl", lines + b"not json\n")
    records = await _read(f"s3://{s3.bucket_use1}/{PREFIX}/m.jsonl", s3c)
    assert [type(r).__name__ for r in records[-2:]] + [len(records)] == [
        "Item",
        "ManifestProblem",
        5001,
    ]


async def test_s3_manifest_items_keep_their_meta(s3: S3Bed, s3c: Any) -> None:
    s3.put(s3.bucket_use1, f"{PREFIX}/meta.jsonl", b'{"source-ref": "s3://b/k.jpg", "n": 1}\n')
    [item] = await _read(f"s3://{s3.bucket_use1}/{PREFIX}/meta.jsonl", s3c)
    assert isinstance(item, Item)
    assert item.meta == {"n": 1}


async def test_missing_manifest_key_is_unreadable(s3: S3Bed, s3c: Any) -> None:
    with pytest.raises(ManifestUnreadable, match="NoSuchKey"):
        await _read(f"s3://{s3.bucket_use1}/{PREFIX}/absent.txt", s3c)


async def test_missing_manifest_bucket_is_unreadable(s3c: Any) -> None:
    with pytest.raises(ManifestUnreadable, match="NoSuchBucket"):
        await _read("s3://no-such-bucket-batchrek/m.txt", s3c)


async def test_s3_manifest_without_a_client_is_unreadable() -> None:
    with pytest.raises(ManifestUnreadable, match="needs an S3 client"):
        [r async for r in read_manifest("s3://b/m.txt")]


async def test_s3_uri_without_bucket_is_unreadable(s3c: Any) -> None:
    with pytest.raises(ManifestUnreadable, match="names no bucket"):
        await _read("s3:///m.txt", s3c)


async def test_gzip_csv_manifest_on_s3_is_decompressed(s3: S3Bed, s3c: Any) -> None:
    s3.put(s3.bucket_use1, f"{PREFIX}/batch.csv.gz", gzip.compress(b"b,k%20one.jpg,v1\n"))
    records = await _read(f"s3://{s3.bucket_use1}/{PREFIX}/batch.csv.gz", s3c)
    assert [r.source for r in records if isinstance(r, Item)] == [S3Ref("b", "k one.jpg", "v1")]


class _BreaksAfterOnePage:
    """An S3 client whose listing hands out one page, then fails like S3 would."""

    async def get_object(self, **kwargs: Any) -> Any:
        raise AssertionError("not used")

    def get_paginator(self, operation_name: str) -> Any:
        assert operation_name == "list_objects_v2"
        return self

    async def paginate(self, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        yield {"Contents": [{"Key": "p/a.jpg", "Size": 3, "ETag": '"e"'}]}
        raise ClientError({"Error": {"Code": "SlowDown", "Message": "busy"}}, "ListObjectsV2")


async def test_listing_that_fails_later_ends_with_a_problem() -> None:
    records = await _read("s3://b/p/", _BreaksAfterOnePage())
    assert [(type(r).__name__, r.line) for r in records] == [
        ("Item", 1),
        ("ManifestProblem", 2),
    ]
    problem = records[1]
    assert isinstance(problem, ManifestProblem)
    assert problem.reason == (
        "listing s3://b/p/ failed after 1 images: An error occurred (SlowDown) when "
        "calling the ListObjectsV2 operation: busy"
    )


async def test_a_manifest_from_s3_may_not_name_local_files(s3: S3Bed, s3c: Any) -> None:
    """Its lines are someone else's data: they must not read this machine's files."""
    lines = b"s3://b/ok.jpg\n/etc/passwd\nfile:///etc/shadow\n../../home/u/.ssh/id_rsa\nrel.jpg\n"
    s3.put(s3.bucket_use1, f"{PREFIX}/hostile.txt", lines)
    records = await _read(f"s3://{s3.bucket_use1}/{PREFIX}/hostile.txt", s3c)
    assert [type(r).__name__ for r in records] == ["Item"] + ["ManifestProblem"] * 4
    assert all("read from S3" in r.reason for r in records if isinstance(r, ManifestProblem))


async def test_a_listing_counts_the_keys_it_skips(listing: str, s3c: Any) -> None:
    from batchrek.manifest import ReadOptions

    skipped: dict[str, int] = {}

    def count(reason: str, n: int) -> None:
        skipped[reason] = skipped.get(reason, 0) + n

    await _read(listing, s3c, options=ReadOptions(on_skip=count))
    assert skipped == {"not_an_image_extension": 2}
