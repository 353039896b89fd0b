"""Plain lists: URIs, URLs and paths, one per line."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from batchrek.errors import ManifestUnreadable
from batchrek.manifest import ReadOptions, read_manifest
from batchrek.models import HttpUrl, Item, LocalPath, ManifestProblem, S3Ref

pytestmark = pytest.mark.anyio

# These tests read one malformed line alone; the "not a manifest" rules are tested
# in test_manifest_guard.py.
ONE_BAD_LINE_IS_FINE = ReadOptions(max_leading_bad_lines=0)


async def _read(path: Path, **kwargs: str) -> list[Item | ManifestProblem]:
    return [
        record
        async for record in read_manifest(str(path), options=ONE_BAD_LINE_IS_FINE, **kwargs)  # type: ignore[arg-type]
    ]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


async def test_each_kind_of_reference_becomes_its_source(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.txt", "s3://b/k.jpg\nhttps://h/x.png\n/abs/y.jpg\n")
    assert [r.source for r in await _read(path) if isinstance(r, Item)] == [
        S3Ref("b", "k.jpg"),
        HttpUrl("https://h/x.png"),
        LocalPath("/abs/y.jpg"),
    ]


async def test_id_is_the_reference_as_written(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.txt", "  s3://b/k.jpg  \nimgs/a.jpg\n")
    assert [r.id for r in await _read(path)] == ["s3://b/k.jpg", "imgs/a.jpg"]


async def test_relative_paths_resolve_against_the_manifest_folder(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.txt", "imgs/a.jpg\n")
    [item] = await _read(path)
    assert item == Item("imgs/a.jpg", LocalPath(os.path.join(tmp_path, "imgs/a.jpg")), line=1)


async def test_blank_lines_and_comments_are_skipped_but_counted(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.txt", "# header\n\n   \ns3://b/k.jpg\n")
    assert [r.line for r in await _read(path)] == [4]


async def test_version_in_uri_is_kept(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.txt", "s3://b/k.jpg?versionId=v7\n")
    [item] = await _read(path)
    assert isinstance(item, Item)
    assert item.source == S3Ref("b", "k.jpg", "v7")


async def test_unparseable_reference_is_a_problem_and_reading_goes_on(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.txt", "s3://bucket-only\ns3:///no-bucket.jpg\ns3://b/ok.jpg\n")
    records = await _read(path)
    assert [(type(r).__name__, r.line) for r in records] == [
        ("ManifestProblem", 1),
        ("ManifestProblem", 2),
        ("Item", 3),
    ]


async def test_problem_keeps_the_start_of_the_raw_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.txt", "s3://" + "x" * 500 + "\n")
    [problem] = await _read(path)
    assert isinstance(problem, ManifestProblem)
    assert problem.raw == ("s3://" + "x" * 500)[:200]


async def test_invalid_utf8_comment_is_skipped_not_reported(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_bytes(b"# caf\xe9 (latin-1)\ns3://b/k.jpg\n")
    assert [(type(r).__name__, r.line) for r in await _read(path)] == [("Item", 2)]


async def test_invalid_utf8_line_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_bytes(b"s3://b/a.jpg\ns3://b/\xff.jpg\ns3://b/c.jpg\n")
    problems = [r for r in await _read(path) if isinstance(r, ManifestProblem)]
    assert [(p.line, p.reason.startswith("not valid UTF-8")) for p in problems] == [(2, True)]


async def test_gzip_manifest_is_read_transparently(tmp_path: Path) -> None:
    path = tmp_path / "m.txt.gz"
    path.write_bytes(gzip.compress(b"s3://b/a.jpg\ns3://b/c.jpg\n"))
    assert [r.id for r in await _read(path)] == ["s3://b/a.jpg", "s3://b/c.jpg"]


async def test_gzip_corrupt_at_the_start_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "m.txt.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00not gzip at all" * 10)
    with pytest.raises(ManifestUnreadable, match="not valid gzip"):
        await _read(path)


async def test_gzip_corrupt_midway_ends_with_a_problem(tmp_path: Path) -> None:
    good = gzip.compress(b"".join(b"s3://b/%d.jpg\n" % i for i in range(200_000)))
    path = tmp_path / "m.txt.gz"
    path.write_bytes(good[: len(good) // 2] + b"\xff" * 1000)
    records = await _read(path)
    assert isinstance(records[-1], ManifestProblem)
    assert isinstance(records[0], Item)


async def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ManifestUnreadable, match="cannot open"):
        await _read(tmp_path / "nope.txt")


async def test_empty_file_yields_nothing(tmp_path: Path) -> None:
    assert await _read(_write(tmp_path, "m.txt", "")) == []


async def test_unknown_format_name_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ManifestUnreadable, match="unknown manifest format"):
        await _read(_write(tmp_path, "m.txt", "a.jpg\n"), fmt="xml")


async def test_forced_format_beats_the_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.csv", "s3://b/a.jpg\n")
    assert [r.id for r in await _read(path, fmt="txt")] == ["s3://b/a.jpg"]


async def test_http_manifest_is_unreadable() -> None:
    with pytest.raises(ManifestUnreadable, match="http"):
        [r async for r in read_manifest("https://example.com/m.txt")]
