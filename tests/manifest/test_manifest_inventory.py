"""S3 Inventory (CSV): manifest.json on S3 or on disk, gzip data files on S3."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aioboto3
import pytest

from batchrek.errors import ManifestUnreadable
from batchrek.manifest import read_manifest
from batchrek.models import Item, ManifestProblem, S3Ref
from tests.conftest import S3Bed

pytestmark = pytest.mark.anyio

ROOT = "manifest-tests/inventory"
SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag"
WHEN = "2024-01-01T00:00:00.000Z"

FILE_A = [  # lines 1-4
    f'"src-bucket","photos/a%20b.jpg","v1","true","false","1234","{WHEN}","etag-a"',
    f'"src-bucket","photos/old.jpg","v0","false","false","10","{WHEN}","etag-old"',
    f'"src-bucket","photos/gone.jpg","v9","true","true","","{WHEN}",""',
    f'"src-bucket","notes/readme.txt","","true","false","5","{WHEN}","etag-t"',
]
FILE_B = [  # lines 5-6
    f'"src-bucket","photos/c+d%2Be.png","","true","false","99","{WHEN}","etag-c"',
    '"src-bucket","photos/short.jpg"',
]


def _gz(lines: list[str]) -> bytes:
    return gzip.compress("".join(line + "\n" for line in lines).encode())


def _manifest(s3: S3Bed, data_keys: list[str], **overrides: Any) -> bytes:
    doc = {
        "sourceBucket": "src-bucket",
        "destinationBucket": f"arn:aws:s3:::{s3.bucket_use1}",
        "version": "2016-11-30",
        "creationTimestamp": "1704067200000",
        "fileFormat": "CSV",
        "fileSchema": SCHEMA,
        "files": [{"key": key, "size": 100, "MD5checksum": "0" * 32} for key in data_keys],
    }
    doc.update(overrides)
    return json.dumps(doc).encode()


def _put_inventory(s3: S3Bed, name: str, files: dict[str, bytes], **overrides: Any) -> str:
    """Data files plus their manifest.json under ROOT/name; returns the manifest's URI."""
    keys = []
    for file_name, body in files.items():
        key = f"{ROOT}/{name}/data/{file_name}"
        s3.put(s3.bucket_use1, key, body)
        keys.append(key)
    manifest_key = f"{ROOT}/{name}/manifest.json"
    s3.put(s3.bucket_use1, manifest_key, _manifest(s3, keys, **overrides))
    return f"s3://{s3.bucket_use1}/{manifest_key}"


@pytest.fixture(scope="module")
async def s3c(s3: S3Bed) -> AsyncIterator[Any]:
    async with aioboto3.Session().client(
        "s3", endpoint_url=s3.endpoint_url, region_name="us-east-1"
    ) as client:
        yield client


@pytest.fixture(scope="module")
def good(s3: S3Bed) -> str:
    return _put_inventory(s3, "good", {"a.csv.gz": _gz(FILE_A), "b.csv.gz": _gz(FILE_B)})


@pytest.fixture(scope="module")
async def records(good: str, s3c: Any) -> list[Item | ManifestProblem]:
    return await _read(good, s3c)


async def _read(spec: str, s3c: Any) -> list[Item | ManifestProblem]:
    return [record async for record in read_manifest(spec, s3=s3c)]


def _keys(records: list[Item | ManifestProblem]) -> list[str]:
    return [r.source.key for r in records if isinstance(r, Item) and isinstance(r.source, S3Ref)]


async def test_both_data_files_are_read_in_order(records: list[Item | ManifestProblem]) -> None:
    assert _keys(records) == ["photos/a b.jpg", "photos/c d+e.png"]


async def test_version_size_and_etag_are_carried(records: list[Item | ManifestProblem]) -> None:
    assert records[0] == Item(
        "s3://src-bucket/photos/a b.jpg?versionId=v1",
        S3Ref("src-bucket", "photos/a b.jpg", "v1"),
        size=1234,
        etag="etag-a",
        line=1,
    )


async def test_keys_are_url_decoded(records: list[Item | ManifestProblem]) -> None:
    assert "photos/c d+e.png" in _keys(records)


async def test_empty_version_is_none(records: list[Item | ManifestProblem]) -> None:
    [item] = [r for r in records if isinstance(r, Item) and r.line == 5]
    assert item.source == S3Ref("src-bucket", "photos/c d+e.png", None)


async def test_noncurrent_versions_are_skipped(records: list[Item | ManifestProblem]) -> None:
    assert "photos/old.jpg" not in _keys(records)


async def test_delete_markers_are_skipped(records: list[Item | ManifestProblem]) -> None:
    assert "photos/gone.jpg" not in _keys(records)


async def test_non_images_are_skipped(records: list[Item | ManifestProblem]) -> None:
    assert "notes/readme.txt" not in _keys(records)


async def test_short_row_is_a_problem_numbered_across_files(
    records: list[Item | ManifestProblem],
) -> None:
    problems = [r for r in records if isinstance(r, ManifestProblem)]
    assert [(p.line, p.reason) for p in problems] == [(6, "2 fields, fileSchema has 8")]


async def test_columns_follow_the_file_schema(s3: S3Bed, s3c: Any) -> None:
    spec = _put_inventory(
        s3,
        "reordered",
        {"a.csv.gz": _gz(['"k%2B1.jpg","7","src-bucket"'])},
        fileSchema="Key, Size, Bucket",
    )
    assert await _read(spec, s3c) == [
        Item("s3://src-bucket/k+1.jpg", S3Ref("src-bucket", "k+1.jpg"), size=7, line=1)
    ]


async def test_local_manifest_json_reads_data_from_s3(
    good: str, s3: S3Bed, s3c: Any, tmp_path: Path
) -> None:
    body = s3.client().get_object(Bucket=s3.bucket_use1, Key=f"{ROOT}/good/manifest.json")
    local = tmp_path / "manifest.json"
    local.write_bytes(body["Body"].read())
    assert _keys(await _read(str(local), s3c)) == ["photos/a b.jpg", "photos/c d+e.png"]


async def test_local_manifest_json_without_client_is_unreadable(tmp_path: Path) -> None:
    local = tmp_path / "manifest.json"
    local.write_bytes(_manifest(S3Bed(endpoint_url="unused"), ["data/a.csv.gz"]))
    with pytest.raises(ManifestUnreadable, match="needs an S3 client"):
        [r async for r in read_manifest(str(local))]


@pytest.mark.parametrize("file_format", ["ORC", "Parquet"])
async def test_columnar_inventories_are_unreadable(s3: S3Bed, s3c: Any, file_format: str) -> None:
    spec = _put_inventory(s3, file_format.lower(), {}, fileFormat=file_format)
    with pytest.raises(ManifestUnreadable, match=f"fileFormat '{file_format}' is not supported"):
        await _read(spec, s3c)


async def test_manifest_without_schema_is_unreadable(s3: S3Bed, s3c: Any) -> None:
    spec = _put_inventory(s3, "noschema", {}, fileSchema=None)
    with pytest.raises(ManifestUnreadable, match="no 'fileSchema'"):
        await _read(spec, s3c)


async def test_manifest_that_is_not_json_is_unreadable(s3: S3Bed, s3c: Any) -> None:
    s3.put(s3.bucket_use1, f"{ROOT}/broken/manifest.json", b'{"sourceBucket": ')
    with pytest.raises(ManifestUnreadable, match="not valid JSON"):
        await _read(f"s3://{s3.bucket_use1}/{ROOT}/broken/manifest.json", s3c)


async def test_missing_first_data_file_is_unreadable(s3: S3Bed, s3c: Any) -> None:
    s3.put(
        s3.bucket_use1,
        f"{ROOT}/missing/manifest.json",
        _manifest(s3, [f"{ROOT}/missing/data/absent.csv.gz"]),
    )
    with pytest.raises(ManifestUnreadable, match="NoSuchKey"):
        await _read(f"s3://{s3.bucket_use1}/{ROOT}/missing/manifest.json", s3c)


async def test_corrupt_later_data_file_becomes_a_problem(s3: S3Bed, s3c: Any) -> None:
    spec = _put_inventory(
        s3, "corrupt", {"a.csv.gz": _gz(FILE_A), "b.csv.gz": b"\x1f\x8b\x08\x00 broken gzip"}
    )
    records = await _read(spec, s3c)
    assert [(type(r).__name__, r.line) for r in records] == [("Item", 1), ("ManifestProblem", 5)]
