"""Plain lists: one ``s3://`` URI, https URL or local path per line."""

from __future__ import annotations

from collections.abc import Iterator

from batchrek.manifest._build import make_item, to_source
from batchrek.manifest._lines import LineBatch, problem
from batchrek.manifest._sources import SourceSyntaxError
from batchrek.models import Item, ManifestProblem

__all__ = ["TxtParser"]


class TxtParser:
    """Blank lines and ``#`` comments are skipped; the id is the line as written."""

    def __init__(self, *, base_dir: str | None) -> None:
        self._base_dir = base_dir

    def feed(self, batch: LineBatch) -> Iterator[Item | ManifestProblem]:
        base_dir = self._base_dir
        bad = batch.bad
        for number, line in enumerate(batch.lines, batch.first):
            text = line.strip()
            if not text or text[0] == "#":
                continue
            if bad and (number - batch.first) in bad:
                yield problem(number, bad[number - batch.first], line)
                continue
            try:
                source = to_source(text, base_dir)
            except SourceSyntaxError as exc:
                yield problem(number, str(exc), line)
                continue
            yield make_item(text, source, None, None, None, number)

    def __repr__(self) -> str:
        return f"TxtParser(base_dir={self._base_dir!r})"
