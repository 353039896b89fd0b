"""Each id once: ``SeenIds`` (the compact set of ids seen, with their first line) and
the selection that turns a repeated id into a ``ManifestProblem`` naming that line."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterable

import pytest

from batchrek.manifest import SeenIds, Selection
from batchrek.models import DuplicateId, Item, LocalPath, ManifestProblem

pytestmark = pytest.mark.anyio


def test_a_new_id_is_new_and_a_repeat_names_its_first_line() -> None:
    seen = SeenIds()
    assert [seen.add("a", 1), seen.add("b", 2), seen.add("a", 3), seen.add("a", 4)] == [
        None,
        None,
        1,
        1,
    ]


def test_every_id_survives_the_bucket_splits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SeenIds, "BUCKET_IDS", 4)  # split often
    seen = SeenIds()
    ids = [f"img-{n}" for n in range(5000)]
    rng = random.Random(5)
    rng.shuffle(ids)
    firsts = [seen.add(i, line) for line, i in enumerate(ids, 1)]
    repeats = [seen.add(i, 99_999) for i in ids]
    assert firsts == [None] * len(ids)
    assert repeats == list(range(1, len(ids) + 1))


def test_it_holds_twelve_bytes_an_id() -> None:
    seen = SeenIds()
    for n in range(10_000):
        seen.add(f"s3://bucket/key-{n}.jpg", n + 1)
    assert (len(seen), seen.nbytes) == (10_000, 120_000)


def test_a_first_line_it_cannot_hold_is_unknown() -> None:
    seen = SeenIds()
    seen.add("a", 2**40)
    assert seen.add("a", 7) == 0


def test_membership() -> None:
    seen = SeenIds()
    seen.add("a", 1)
    assert ("a" in seen, "b" in seen, 3 in seen) == (True, False, False)


# -- the selection -----------------------------------------------------------------------


async def _entries(rows: Iterable[Item | ManifestProblem]) -> AsyncIterator[Item | ManifestProblem]:
    for row in rows:
        yield row


def _item(item_id: str, line: int) -> Item:
    return Item(id=item_id, source=LocalPath(f"/img/{line}.jpg"), line=line)


async def _select(selection: Selection, rows: list[Item | ManifestProblem]) -> list[object]:
    return [e async for e in selection.select(_entries(rows))]


async def test_a_repeated_id_becomes_a_problem_naming_the_first_line() -> None:
    got = await _select(Selection(), [_item("x", 1), _item("y", 2), _item("x", 3)])
    problem = got[2]
    assert got[:2] == [_item("x", 1), _item("y", 2)]
    assert isinstance(problem, ManifestProblem)
    assert (problem.line, problem.id, problem.raw, problem.duplicate) == (
        3,
        "manifest-line-3",
        "/img/3.jpg",
        DuplicateId(id="x", first_line=1),
    )
    assert problem.reason.startswith("id 'x' is already used by line 1; this line was not")


async def test_a_repeat_does_not_count_toward_the_limit() -> None:
    got = await _select(Selection(limit=2), [_item("x", 1), _item("x", 2), _item("y", 3)])
    assert [type(e).__name__ for e in got] == ["Item", "ManifestProblem", "Item"]


async def test_a_shard_sees_the_repeats_of_its_own_ids_only() -> None:
    rows: list[Item | ManifestProblem] = [_item(f"id-{n % 40}", n + 1) for n in range(80)]
    problems = []
    for index in range(3):
        got = await _select(Selection(shard_index=index, shard_count=3), rows)
        problems += [e.line for e in got if isinstance(e, ManifestProblem)]
    assert sorted(problems) == list(range(41, 81))


async def test_unique_ids_off_passes_repeats_through() -> None:
    got = await _select(Selection(unique_ids=False), [_item("x", 1), _item("x", 2)])
    assert got == [_item("x", 1), _item("x", 2)]
