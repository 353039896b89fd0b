"""The current view written where people can read it: SQLite, CSV or Parquet.

- ``.sqlite`` / ``.db``: one file, tables ``results`` and ``labels`` (stdlib).
- ``.csv``: ``FILE`` (results) and ``FILE-stem.labels.csv`` (stdlib).
- ``.parquet``: ``FILE`` and ``FILE-stem.labels.parquet`` (pyarrow: ``pip install
  'batchrek[export]'``), written in row groups so memory holds one batch.

Each file is written to a new temporary file beside it (created exclusively, never
through a symlink: ``batchrek.safefile``) and moved into place, so a reader never
sees half an export; a destination that is a symlink has its target replaced.
"""

from __future__ import annotations

import csv
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from batchrek.errors import ConfigError
from batchrek.export._current import RESULT_COLUMNS
from batchrek.export._labels import LABEL_COLUMNS
from batchrek.safefile import temp_beside

__all__ = ["FORMATS", "export_format", "labels_path", "write_tables"]

FORMATS = {".sqlite": "sqlite", ".db": "sqlite", ".csv": "csv", ".parquet": "parquet"}
_BATCH = 50_000
_FLOAT_LABELS = {"confidence", "left", "top", "width", "height"}


def export_format(path: str) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ConfigError(f"export to {path}: name it .parquet, .csv or .sqlite")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError(
                "Parquet export needs pyarrow: pip install 'batchrek[export]' "
                "(or export to .csv or .sqlite, which need nothing more)"
            ) from None
    return fmt


def labels_path(path: str) -> str:
    p = Path(path)
    return str(p.with_name(f"{p.stem}.labels{p.suffix}"))


def _rows(db: sqlite3.Connection, table: str, columns: Sequence[str]) -> Iterator[list[Any]]:
    names = ", ".join('"' + c + '"' for c in columns)
    cursor = db.execute(f"SELECT {names} FROM {table}")
    while batch := cursor.fetchmany(_BATCH):
        yield batch


def _temp(path: str) -> tuple[int, str]:
    """A new temporary file beside ``path`` (mode 0666 less the umask)."""
    return temp_beside(path, "export")


def _write_csv(db: sqlite3.Connection, table: str, columns: Sequence[str], path: str) -> None:
    fd, tmp = _temp(path)
    try:
        with open(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for batch in _rows(db, table, columns):
                writer.writerows(batch)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_parquet(db: sqlite3.Connection, table: str, columns: Sequence[str], path: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            (c, pa.float64() if table == "labels" and c in _FLOAT_LABELS else pa.string())
            for c in columns
        ]
    )
    fd, tmp = _temp(path)
    try:
        with (
            open(fd, "wb") as fh,
            pq.ParquetWriter(fh, schema, compression="zstd") as writer,
        ):
            for batch in _rows(db, table, columns):
                arrays = [
                    pa.array([row[i] for row in batch], type=schema.field(i).type)
                    for i in range(len(columns))
                ]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_tables(db: sqlite3.Connection, path: str, fmt: str) -> list[str]:
    """Write both tables from the merged database; returns the files written."""
    path = os.path.realpath(path)  # a symlinked destination: replace its target
    if fmt == "csv":
        _write_csv(db, "results", RESULT_COLUMNS, path)
        _write_csv(db, "labels", LABEL_COLUMNS, labels_path(path))
    elif fmt == "parquet":
        _write_parquet(db, "results", RESULT_COLUMNS, path)
        _write_parquet(db, "labels", LABEL_COLUMNS, labels_path(path))
    else:
        raise ValueError(f"write_tables does not write {fmt}: the database is the export")
    return [path, labels_path(path)]
