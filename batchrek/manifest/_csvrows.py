"""CSV manifests: a header with an ``image`` column, or headerless ``bucket,key[,version]``.

Headerless rows are the S3 Batch Operations / S3 Inventory layout, whose keys are
URL-encoded (``unquote_plus``); a header naming ``bucket`` and ``key`` columns means
the same layout with names. One record per line: a quoted field cannot span lines.

A first row that is plainly a header (names, where a bucket,key row holds a key
with a ``/`` or an extension) but names no image column stops the run
(``ManifestUnreadable``): read as bucket,key it would turn every row into a wrong S3
reference. So does a first line that is JSON (a JSON Lines file read as CSV). A
headerless row whose bucket is not a bucket name is one ManifestError record.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from typing import Final

from batchrek.errors import ManifestUnreadable
from batchrek.manifest._build import decode_key, make_item, make_s3ref, to_source
from batchrek.manifest._lines import LineParser, LineRejected
from batchrek.models import Item, Source

__all__ = ["CsvParser", "split_csv_line"]

_IMAGE_COLUMNS: Final = ("image", "source-ref")
_VERSION_COLUMNS: Final = ("version_id", "versionid", "version")
# What S3 accepts as a bucket name (legacy names included, as botocore checks them).
_BUCKET: Final = re.compile(r"[a-zA-Z0-9.\-_]{1,255}")


def split_csv_line(line: str) -> list[str]:
    """One line's fields; plain ``str.split`` unless the line uses quotes.

    Raises ``LineRejected`` ("malformed CSV: ...") for broken quoting.
    """
    if '"' not in line:
        return line.split(",")
    try:
        return next(csv.reader((line,), strict=True))
    except csv.Error as exc:
        raise LineRejected(f"malformed CSV: {exc}") from exc


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


class CsvParser(LineParser):
    """Decides header vs headerless from the first non-blank row."""

    def __init__(self, *, base_dir: str | None, allow_local: bool = True) -> None:
        self._base_dir = base_dir
        self._local = allow_local
        self._layout: _Layout | None = None

    def parse_line(self, line: str, number: int) -> Item | None:
        if not line or line.isspace():
            return None
        layout = self._layout
        if layout is None and line.lstrip().startswith("{"):
            raise ManifestUnreadable(
                "the first line is JSON, not CSV: for a JSON Lines manifest use --format "
                "jsonl (or no --format: it is detected)"
            )
        fields = split_csv_line(line)
        if layout is None:
            layout = self._layout = _layout_from(fields)
            if layout is not _HEADERLESS:
                return None
        if layout.width is None:
            if len(fields) < 2:
                raise LineRejected("expected bucket,key[,version_id]")
            if not _BUCKET.fullmatch(fields[0].strip()):
                raise LineRejected(f"{fields[0].strip()!r} is not an S3 bucket name (bucket,key)")
        elif len(fields) != layout.width:
            raise LineRejected(f"{len(fields)} fields, the header has {layout.width}")
        source: Source
        if layout.image >= 0:
            written = fields[layout.image].strip()
            source = to_source(written, self._base_dir, self._local)
            default_id = written
        else:
            bucket = fields[layout.bucket].strip()
            key = decode_key(fields[layout.key])
            if not bucket or not key:
                raise LineRejected("empty bucket or key")
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
        if _is_header(first_row):
            raise ManifestUnreadable(
                f"the CSV header ({', '.join(c.strip() for c in first_row)}) has no 'image' "
                "column: name the column of image paths or URIs 'image' (or 'source-ref'), "
                "or give 'bucket' and 'key' columns (a headerless bucket,key file that starts "
                "with this row: add the line bucket,key on top)"
            )
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


def _is_header(first_row: list[str]) -> bool:
    """Whether a first row without known column names is still a header: names in
    every cell, no path in any (``/``), no file name after the first (``.``). A
    bucket,key row has a key with a ``/`` or an extension; a headerless file whose
    first key has neither is read as having a header (the message says what to do)."""
    cells = [cell.strip() for cell in first_row]
    if not all(cells) or any("/" in cell for cell in cells):
        return False
    return not any("." in cell for cell in cells[1:])
