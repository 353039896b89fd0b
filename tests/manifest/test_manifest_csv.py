"""CSV manifests: an ``image`` header, or headerless S3 Batch Operations rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchrek.errors import ManifestUnreadable
from batchrek.manifest import ReadOptions, read_manifest
from batchrek.models import HttpUrl, Item, ManifestProblem, S3Ref

pytestmark = pytest.mark.anyio

# These tests read one malformed line alone; the "not a manifest" rules are tested
# in test_manifest_guard.py.
ONE_BAD_LINE_IS_FINE = ReadOptions(max_leading_bad_lines=0)


async def _read(tmp_path: Path, text: str) -> list[Item | ManifestProblem]:
    path = tmp_path / "m.csv"
    path.write_text(text, encoding="utf-8")
    return [record async for record in read_manifest(str(path), options=ONE_BAD_LINE_IS_FINE)]


def _items(records: list[Item | ManifestProblem]) -> list[Item]:
    return [r for r in records if isinstance(r, Item)]


async def test_header_image_column_gives_the_source(tmp_path: Path) -> None:
    records = await _read(tmp_path, "image\ns3://b/a.jpg\nhttps://h/b.png\n")
    assert [i.source for i in _items(records)] == [S3Ref("b", "a.jpg"), HttpUrl("https://h/b.png")]


async def test_header_id_column_names_the_item(tmp_path: Path) -> None:
    records = await _read(tmp_path, "id,image\nrow-1,s3://b/a.jpg\n")
    assert [i.id for i in _items(records)] == ["row-1"]


async def test_empty_id_falls_back_to_the_image(tmp_path: Path) -> None:
    records = await _read(tmp_path, "id,image\n,s3://b/a.jpg\n")
    assert [i.id for i in _items(records)] == ["s3://b/a.jpg"]


async def test_other_columns_are_meta(tmp_path: Path) -> None:
    records = await _read(tmp_path, "image,Label,shop\ns3://b/a.jpg,cat,\n")
    assert [i.meta for i in _items(records)] == [{"Label": "cat", "shop": ""}]


async def test_quoted_fields_may_hold_commas(tmp_path: Path) -> None:
    records = await _read(tmp_path, 'image,note\n"s3://b/a,b.jpg","x, y"\n')
    assert [(i.source, i.meta) for i in _items(records)] == [
        (S3Ref("b", "a,b.jpg"), {"note": "x, y"})
    ]


async def test_header_row_has_line_one_and_data_starts_at_two(tmp_path: Path) -> None:
    records = await _read(tmp_path, "image\ns3://b/a.jpg\n")
    assert [r.line for r in records] == [2]


async def test_headerless_rows_are_bucket_and_key(tmp_path: Path) -> None:
    records = await _read(tmp_path, "my-bucket,photos/a.jpg\n")
    assert _items(records) == [
        Item("s3://my-bucket/photos/a.jpg", S3Ref("my-bucket", "photos/a.jpg"), line=1)
    ]


async def test_headerless_keys_are_url_decoded(tmp_path: Path) -> None:
    records = await _read(tmp_path, "b,photos/summer+2024/%C3%A9t%C3%A9%2B1.jpg\n")
    assert [i.source for i in _items(records)] == [S3Ref("b", "photos/summer 2024/été+1.jpg")]


async def test_headerless_version_id_is_kept(tmp_path: Path) -> None:
    records = await _read(tmp_path, "b,k.jpg,3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY\n")
    assert [i.source for i in _items(records)] == [
        S3Ref("b", "k.jpg", "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
    ]


async def test_headerless_id_includes_the_version(tmp_path: Path) -> None:
    records = await _read(tmp_path, "b,k.jpg,v1\nb,k.jpg,v2\n")
    assert [i.id for i in _items(records)] == [
        "s3://b/k.jpg?versionId=v1",
        "s3://b/k.jpg?versionId=v2",
    ]


async def test_headerless_empty_version_is_none(tmp_path: Path) -> None:
    records = await _read(tmp_path, "b,k.jpg,\n")
    assert [i.source for i in _items(records)] == [S3Ref("b", "k.jpg", None)]


async def test_headerless_quoted_inventory_style_rows(tmp_path: Path) -> None:
    records = await _read(tmp_path, '"b","a%20b.jpg","","true"\n')
    assert [i.source for i in _items(records)] == [S3Ref("b", "a b.jpg")]


async def test_named_bucket_and_key_columns_are_a_header(tmp_path: Path) -> None:
    records = await _read(tmp_path, "Bucket,Key,VersionId\nb,a+b.jpg,v1\n")
    assert [i.source for i in _items(records)] == [S3Ref("b", "a b.jpg", "v1")]


async def test_headerless_single_field_is_a_problem(tmp_path: Path) -> None:
    _, problem = await _read(tmp_path, "b,k.jpg\nlonely\n")
    assert isinstance(problem, ManifestProblem)
    assert problem.reason == ("expected bucket,key[,version_id]")


async def test_headerless_empty_key_is_a_problem(tmp_path: Path) -> None:
    [problem] = await _read(tmp_path, "b,\n")
    assert isinstance(problem, ManifestProblem)
    assert problem.reason == "empty bucket or key"


async def test_row_wider_than_the_header_is_a_problem(tmp_path: Path) -> None:
    [problem] = await _read(tmp_path, "image,label\ns3://b/a.jpg,cat,extra\n")
    assert isinstance(problem, ManifestProblem)
    assert problem.reason == "3 fields, the header has 2"


async def test_broken_quoting_is_a_problem(tmp_path: Path) -> None:
    [problem] = await _read(tmp_path, 'image\n"s3://b/a.jpg\n')
    assert isinstance(problem, ManifestProblem)
    assert problem.reason.startswith("malformed CSV")


async def test_unparseable_image_is_a_problem(tmp_path: Path) -> None:
    [problem] = await _read(tmp_path, "image\ns3://only-bucket\n")
    assert isinstance(problem, ManifestProblem)
    assert "bucket and a key" in problem.reason


async def test_bom_and_crlf_do_not_hide_the_header(tmp_path: Path) -> None:
    records = await _read(tmp_path, "\ufeffimage,id\r\ns3://b/a.jpg,x\r\n")
    assert [(i.id, i.source) for i in _items(records)] == [("x", S3Ref("b", "a.jpg"))]


async def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    records = await _read(tmp_path, "\nb,a.jpg\n\nb,c.jpg\n")
    assert [r.line for r in records] == [2, 4]


async def test_a_header_without_an_image_column_stops_the_run(tmp_path: Path) -> None:
    with pytest.raises(ManifestUnreadable, match=r"header \(path, label\) has no 'image' column"):
        await _read(tmp_path, "path,label\nimgs/a.jpg,cat\n")


async def test_a_single_column_header_without_image_stops_the_run(tmp_path: Path) -> None:
    with pytest.raises(ManifestUnreadable, match="no 'image' column"):
        await _read(tmp_path, "filename\nimgs/a.jpg\n")


async def test_json_lines_read_as_csv_say_so(tmp_path: Path) -> None:
    with pytest.raises(ManifestUnreadable, match="--format jsonl"):
        await _read(tmp_path, '{"id": "a", "image": "imgs/a.jpg"}\n')


async def test_a_headerless_row_whose_bucket_is_a_path_is_a_problem(tmp_path: Path) -> None:
    [problem] = await _read(tmp_path, "imgs/a.jpg,cat\n")
    assert isinstance(problem, ManifestProblem)
    assert problem.reason == "'imgs/a.jpg' is not an S3 bucket name (bucket,key)"
