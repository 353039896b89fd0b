"""CSV manifests: a header with an ``image`` column, or headerless ``bucket,key[,version]``.

Headerless rows are the S3 Batch Operations / S3 Inventory layout, whose keys are
URL-encoded (``unquote_plus``); a header naming ``bucket`` and ``key`` columns means
the same layout with names. One record per line: a quoted field cannot span lines.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from batchrek.manifest._build import decode_key, make_item, make_s3ref, to_source
from batchrek.manifest._lines import LineBatch, problem
from batchrek.manifest._sources import SourceSyntaxError
from batchrek.models import Item, ManifestProblem, Source

__all__ = ["CsvParser", "split_csv_line"]

_IMAGE_COLUMNS: Final = ("image", "source-ref")
_VERSION_COLUMNS: Final = ("version_id", "versionid", "version")


def split_csv_line(line: str) -> list[str]:
    """One line's fields; plain ``str.split`` unless the line uses quotes.

    Raises ``csv.Error`` for broken quoting.
    """
    if '"' not in line:
        return line.split(",")
    return next(csv.reader((line,), strict=True))


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where things are in a row; ``image`` < 0 means bucket/key columns."""

    width: int | None  # None: headerless, any width >= 2
    image: int = -1
    bucket: int = 0
    key: int = 1
    version: int | None = 2
    id: int | None = None
    meta: tuple[tuple[int, str], ...] = ()


_HEADERLESS: Final = _Layout(width=None)


class CsvParser:
    """Decides header vs headerless from the first non-blank row."""

    def __init__(self, *, base_dir: str | None) -> None:
        self._base_dir = base_dir
        self._layout: _Layout | None = None

    def feed(self, batch: LineBatch) -> Iterator[Item | ManifestProblem]:
        bad = batch.bad
        for index, line in enumerate(batch.lines):
            number = batch.first + index
            if bad and index in bad:
                yield problem(number, bad[index], line)
                continue
            if not line or line.isspace():
                continue
            try:
                fields = split_csv_line(line)
            except csv.Error as exc:
                yield problem(number, f"malformed CSV: {exc}", line)
                continue
            if self._layout is None:
                self._layout = _layout_from(fields)
                if self._layout is not _HEADERLESS:
                    continue
            yield self._row(self._layout, number, line, fields)

    def _row(
        self, layout: _Layout, number: int, line: str, fields: list[str]
    ) -> Item | ManifestProblem:
        if layout.width is None:
            if len(fields) < 2:
                return problem(number, "expected bucket,key[,version_id]", line)
        elif len(fields) != layout.width:
            return problem(number, f"{len(fields)} fields, the header has {layout.width}", line)
        source: Source
        if layout.image >= 0:
            written = fields[layout.image].strip()
            try:
                source = to_source(written, self._base_dir)
            except SourceSyntaxError as exc:
                return problem(number, str(exc), line)
            default_id = written
        else:
            bucket = fields[layout.bucket].strip()
            key = decode_key(fields[layout.key])
            if not bucket or not key:
                return problem(number, "empty bucket or key", line)
            version: str | None = None
            if layout.version is not None and layout.version < len(fields):
                version = fields[layout.version].strip() or None
            source = make_s3ref(bucket, key, version)
            default_id = str(source)
        item_id = fields[layout.id].strip() if layout.id is not None else ""
        meta = {name: fields[column] for column, name in layout.meta}
        return make_item(item_id or default_id, source, None, None, meta or None, number)

    def __repr__(self) -> str:
        return f"CsvParser(base_dir={self._base_dir!r}, layout={self._layout!r})"


def _layout_from(first_row: list[str]) -> _Layout:
    names = [cell.strip().lower() for cell in first_row]
    image = next((names.index(name) for name in _IMAGE_COLUMNS if name in names), -1)
    if image < 0 and not ("bucket" in names and "key" in names):
        return _HEADERLESS
    used: set[int] = set()
    bucket = key = -1
    version: int | None = None
    if image >= 0:
        used.add(image)
    else:
        bucket, key = names.index("bucket"), names.index("key")
        version = next((names.index(n) for n in _VERSION_COLUMNS if n in names), None)
        used.update(i for i in (bucket, key, version) if i is not None)
    id_column = names.index("id") if "id" in names else None
    if id_column is not None:
        used.add(id_column)
    meta = tuple(
        (column, first_row[column].strip())
        for column in range(len(first_row))
        if column not in used
    )
    return _Layout(
        width=len(first_row),
        image=image,
        bucket=bucket,
        key=key,
        version=version,
        id=id_column,
        meta=meta,
    )
