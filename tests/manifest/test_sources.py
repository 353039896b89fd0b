from __future__ import annotations

import pytest

from batchrek.manifest import SourceSyntaxError, parse_source, shard_of
from batchrek.models import HttpUrl, LocalPath, S3Ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s3://b/k/a.jpg", S3Ref("b", "k/a.jpg")),
        ("s3://b/a.jpg?versionId=v1", S3Ref("b", "a.jpg", "v1")),
        ("https://x.org/a.jpg", HttpUrl("https://x.org/a.jpg")),
        ("file:///tmp/a%20b.jpg", LocalPath("/tmp/a b.jpg")),
        ("/abs/a.jpg", LocalPath("/abs/a.jpg")),
    ],
)
def test_parse(text: str, expected: object) -> None:
    assert parse_source(text) == expected


def test_relative_paths_resolve_against_the_manifest_folder() -> None:
    assert parse_source("img/a.jpg", base_dir="/data") == LocalPath("/data/img/a.jpg")


@pytest.mark.parametrize("text", ["", "s3://bucket-only", "ftp://host/a.jpg", "gs://b/k"])
def test_unusable_references_are_syntax_errors(text: str) -> None:
    with pytest.raises(SourceSyntaxError):
        parse_source(text)


def test_shards_partition_ids_stably_and_evenly() -> None:
    ids = [f"s3://b/{i}.jpg" for i in range(3000)]
    counts = [sum(shard_of(i, 3) == s for i in ids) for s in range(3)]
    assert [shard_of(i, 3) for i in ids] == [shard_of(i, 3) for i in ids]
    assert min(counts) > 900


@pytest.mark.parametrize("text", ["/tmp/a\x00.jpg", "file:///tmp/a%00.jpg", "a\x00b.jpg"])
def test_a_nul_byte_is_a_syntax_error(text: str) -> None:
    with pytest.raises(SourceSyntaxError, match="NUL"):
        parse_source(text)


@pytest.mark.parametrize("text", ["/etc/passwd", "file:///etc/passwd", "../x.jpg", "x.jpg"])
def test_local_references_are_refused_where_local_files_are_not_allowed(text: str) -> None:
    with pytest.raises(SourceSyntaxError, match="read from S3"):
        parse_source(text, allow_local=False)


def test_remote_references_are_fine_where_local_files_are_not_allowed() -> None:
    assert parse_source("https://x.org/a.jpg", allow_local=False) == HttpUrl("https://x.org/a.jpg")
