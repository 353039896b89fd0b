"""The one bad-line loop every line format shares (``LineParser.feed``)."""

from __future__ import annotations

from batchrek.manifest._lines import LineBatch, LineParser, LineRejected
from batchrek.manifest._sources import SourceSyntaxError
from batchrek.models import Item, LocalPath, ManifestProblem


class _Toy(LineParser):
    """``ok`` is an item, ``no...`` is rejected, ``src`` names no image, blanks skip."""

    def parse_line(self, line: str, number: int) -> Item | None:
        if not line:
            return None
        if line.startswith("no"):
            raise LineRejected("said no")
        if line == "src":
            raise SourceSyntaxError("empty image reference")
        return Item(line, LocalPath(line), None, None, None, number)


def _feed(batch: LineBatch) -> list[tuple[str, int | None, str]]:
    return [
        ("problem", r.line, r.reason) if isinstance(r, ManifestProblem) else ("item", r.line, r.id)
        for r in _Toy().feed(batch)
    ]


def test_rejected_lines_become_numbered_problems_and_reading_goes_on() -> None:
    batch = LineBatch(10, ["ok", "no", "", "src", "ok2"], {})
    assert _feed(batch) == [
        ("item", 10, "ok"),
        ("problem", 11, "said no"),
        ("problem", 13, "empty image reference"),
        ("item", 14, "ok2"),
    ]


def test_undecodable_lines_are_problems_with_their_reason() -> None:
    batch = LineBatch(1, ["ok", "b\ufffdd"], {1: "not valid UTF-8 (byte 1)"})
    assert _feed(batch) == [("item", 1, "ok"), ("problem", 2, "not valid UTF-8 (byte 1)")]


def test_problem_keeps_only_the_start_of_the_line() -> None:
    [record] = _Toy().feed(LineBatch(1, ["no" + "x" * 500], {}))
    assert isinstance(record, ManifestProblem)
    assert record.raw == ("no" + "x" * 500)[:200]
