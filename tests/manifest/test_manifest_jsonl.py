"""JSON Lines, including SageMaker Ground Truth / Custom Labels manifests."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from batchrek.manifest import ReadOptions, read_manifest
from batchrek.models import Item, LocalPath, ManifestProblem, S3Ref

pytestmark = pytest.mark.anyio

# These tests read one malformed line alone; the "not a manifest" rules are tested
# in test_manifest_guard.py.
ONE_BAD_LINE_IS_FINE = ReadOptions(max_leading_bad_lines=0)

GROUND_TRUTH = {
    "source-ref": "s3://gt-bucket/images/cat.jpg",
    "animal": 1,
    "animal-metadata": {
        "class-name": "cat",
        "confidence": 0.93,
        "job-name": "labeling-job/animals",
        "human-annotated": "yes",
    },
}


async def _read(tmp_path: Path, text: str, name: str = "m.jsonl") -> list[Item | ManifestProblem]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return [record async for record in read_manifest(str(path), options=ONE_BAD_LINE_IS_FINE)]


async def _one_problem(tmp_path: Path, line: str) -> ManifestProblem:
    [record] = await _read(tmp_path, line + "\n")
    assert isinstance(record, ManifestProblem)
    return record


async def test_ground_truth_source_ref_becomes_the_source(tmp_path: Path) -> None:
    [item] = await _read(tmp_path, orjson.dumps(GROUND_TRUTH).decode())
    assert isinstance(item, Item)
    assert item.source == S3Ref("gt-bucket", "images/cat.jpg")


async def test_ground_truth_labels_are_carried_as_meta(tmp_path: Path) -> None:
    [item] = await _read(tmp_path, orjson.dumps(GROUND_TRUTH).decode())
    assert isinstance(item, Item)
    assert item.meta == {
        "animal": 1,
        "animal-metadata": GROUND_TRUTH["animal-metadata"],
    }


async def test_dot_manifest_files_are_json_lines(tmp_path: Path) -> None:
    records = await _read(tmp_path, orjson.dumps(GROUND_TRUTH).decode(), name="out.manifest")
    assert [r.id for r in records] == ["s3://gt-bucket/images/cat.jpg"]


async def test_image_field_and_explicit_id(tmp_path: Path) -> None:
    [item] = await _read(tmp_path, '{"image": "s3://b/k.png", "id": "row-7"}\n')
    assert isinstance(item, Item)
    assert (item.id, item.source, item.meta) == (
        "row-7",
        S3Ref("b", "k.png"),
        None,
    )


async def test_numeric_id_becomes_a_string(tmp_path: Path) -> None:
    [item] = await _read(tmp_path, '{"image": "s3://b/k.png", "id": 42}\n')
    assert item.id == "42"


async def test_id_defaults_to_the_image_as_written(tmp_path: Path) -> None:
    [item] = await _read(tmp_path, '{"image": "pics/a.jpg"}\n')
    assert isinstance(item, Item)
    assert (item.id, item.source) == (
        "pics/a.jpg",
        LocalPath(os.path.join(tmp_path, "pics/a.jpg")),
    )


async def test_blank_lines_are_skipped_and_numbers_kept(tmp_path: Path) -> None:
    records = await _read(tmp_path, '\n{"image": "s3://b/1.jpg"}\n\n  \n{"image": "s3://b/2.jpg"}')
    assert [r.line for r in records] == [2, 5]


async def test_bad_json_is_a_problem(tmp_path: Path) -> None:
    assert (await _one_problem(tmp_path, '{"image": ')).reason.startswith("invalid JSON")


async def test_non_object_is_a_problem(tmp_path: Path) -> None:
    problem = await _one_problem(tmp_path, '["s3://b/k.jpg"]')
    assert problem.reason == "expected a JSON object, got an array"


async def test_missing_image_field_is_a_problem(tmp_path: Path) -> None:
    problem = await _one_problem(tmp_path, '{"path": "s3://b/k.jpg"}')
    assert problem.reason == "no 'image' or 'source-ref' field"


async def test_non_string_image_is_a_problem(tmp_path: Path) -> None:
    problem = await _one_problem(tmp_path, '{"image": 5}')
    assert problem.reason == "'image' must be a string, got a number"


async def test_unparseable_uri_is_a_problem(tmp_path: Path) -> None:
    problem = await _one_problem(tmp_path, '{"source-ref": "s3://only-bucket"}')
    assert "bucket and a key" in problem.reason


async def test_structured_id_is_a_problem(tmp_path: Path) -> None:
    problem = await _one_problem(tmp_path, '{"image": "s3://b/k.jpg", "id": {"a": 1}}')
    assert problem.reason == "'id' must be a string or an integer, got an object"


async def test_bad_line_does_not_stop_reading(tmp_path: Path) -> None:
    records = await _read(
        tmp_path, '{"image": "s3://b/1.jpg"}\nnot json\n{"image": "s3://b/2.jpg"}\n'
    )
    assert [type(r).__name__ for r in records] == ["Item", "ManifestProblem", "Item"]


async def test_problem_id_names_the_line(tmp_path: Path) -> None:
    records = await _read(tmp_path, '{"image": "s3://b/1.jpg"}\nnot json\n')
    assert records[1].id == "manifest-line-2"


async def test_metadata_too_deep_to_write_is_a_problem(tmp_path: Path) -> None:
    deep = '{"a": ' * 300 + "1" + "}" * 300
    line = '{"image": "s3://b/k.jpg", "meta": ' + deep + "}"
    problem = await _one_problem(tmp_path, line)
    assert "cannot be written" in problem.reason


async def test_deep_but_writable_metadata_is_kept(tmp_path: Path) -> None:
    deep = '{"a": ' * 200 + "1" + "}" * 200
    [item] = await _read(tmp_path, '{"image": "s3://b/k.jpg", "meta": ' + deep + "}\n")
    assert isinstance(item, Item)


async def test_an_s3_line_may_carry_the_objects_size_and_etag(tmp_path: Path) -> None:
    line = '{"image": "s3://b/k.jpg", "size": 12, "etag": "\\"abc\\"", "x": 1}\n'
    [item] = await _read(tmp_path, line)
    assert isinstance(item, Item)
    assert (item.size, item.etag, item.meta) == (12, "abc", {"x": 1})
