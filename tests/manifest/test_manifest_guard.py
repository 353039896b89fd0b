"""A file that is not a manifest stops the run (exit 2) instead of producing error
records without end; one bad line in a manifest is one problem record."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchrek.errors import ManifestUnreadable
from batchrek.manifest import BAD_SHARE_AFTER, ReadOptions, read_manifest
from batchrek.models import Item, ManifestProblem

pytestmark = pytest.mark.anyio

GOOD = "s3://bucket/a.jpg"
BAD = "gs://bucket/a.jpg"  # an unknown scheme: one ManifestProblem each


async def _read(
    tmp_path: Path, lines: list[str], options: ReadOptions | None = None
) -> list[Item | ManifestProblem]:
    path = tmp_path / "m.txt"
    path.write_text("".join(line + "\n" for line in lines))
    return [r async for r in read_manifest(str(path), options=options)]


async def test_garbage_from_the_first_line_is_not_a_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestUnreadable, match="is not a manifest: its first 100"):
        await _read(tmp_path, [BAD] * 100 + [GOOD])


async def test_a_garbage_file_yields_no_record_before_it_is_refused(tmp_path: Path) -> None:
    seen: list[Item | ManifestProblem] = []
    path = tmp_path / "m.txt"
    path.write_text(f"{BAD}\n" * 500)

    async def consume() -> None:
        async for record in read_manifest(str(path)):
            seen.append(record)

    with pytest.raises(ManifestUnreadable):
        await consume()
    assert seen == []


async def test_bad_lines_before_the_first_good_one_are_all_reported(tmp_path: Path) -> None:
    records = await _read(tmp_path, [BAD] * 99 + [GOOD])
    kinds = [type(r).__name__ for r in records]
    assert kinds == ["ManifestProblem"] * 99 + ["Item"]


async def test_a_file_with_no_usable_line_is_not_a_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestUnreadable, match="none of its entries is usable"):
        await _read(tmp_path, [BAD] * 3)


async def test_mostly_garbage_is_not_a_manifest(tmp_path: Path) -> None:
    lines = [GOOD if i % 4 == 0 else BAD for i in range(BAD_SHARE_AFTER + 10)]
    with pytest.raises(ManifestUnreadable, match="are malformed"):
        await _read(tmp_path, lines)


async def test_a_few_bad_lines_among_good_ones_are_records(tmp_path: Path) -> None:
    lines = [BAD if i % 10 == 0 else GOOD for i in range(BAD_SHARE_AFTER + 10)]
    records = await _read(tmp_path, lines)
    assert sum(isinstance(r, ManifestProblem) for r in records) == 101


async def test_the_rules_can_be_switched_off(tmp_path: Path) -> None:
    lenient = ReadOptions(max_leading_bad_lines=0, max_bad_line_share=1.0)
    records = await _read(tmp_path, [BAD] * (BAD_SHARE_AFTER + 10), lenient)
    assert len(records) == BAD_SHARE_AFTER + 10


async def test_an_over_long_line_is_one_problem_and_reading_goes_on(tmp_path: Path) -> None:
    from batchrek.manifest._lines import MAX_LINE_BYTES

    path = tmp_path / "m.jsonl"
    with path.open("w") as fh:
        fh.write('{"image": "s3://b/1.jpg"}\n')
        fh.write('{"image": "s3://b/2.jpg", "pad": "' + "x" * (MAX_LINE_BYTES + 10) + '"}\n')
        fh.write('{"image": "s3://b/3.jpg"}\n')
    records = [r async for r in read_manifest(str(path))]
    assert [(type(r).__name__, r.line) for r in records] == [
        ("Item", 1),
        ("ManifestProblem", 2),
        ("Item", 3),
    ]
