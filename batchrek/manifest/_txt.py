"""Plain lists: one ``s3://`` URI, https URL or local path per line."""

from __future__ import annotations

from batchrek.manifest._build import make_item, to_source
from batchrek.manifest._lines import LineParser
from batchrek.models import Item

__all__ = ["TxtParser"]


class TxtParser(LineParser):
    """Blank lines and ``#`` comments are skipped; the id is the line as written."""

    def __init__(self, *, base_dir: str | None, allow_local: bool = True) -> None:
        self._base_dir = base_dir
        self._local = allow_local

    def parse_line(self, line: str, number: int) -> Item | None:
        text = line.strip()
        if not text or text[0] == "#":
            return None
        return make_item(
            text, to_source(text, self._base_dir, self._local), None, None, None, number
        )

    def skips_undecodable(self, line: str) -> bool:
        text = line.strip()
        return not text or text[0] == "#"

    def __repr__(self) -> str:
        return f"TxtParser(base_dir={self._base_dir!r})"
