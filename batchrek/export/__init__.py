"""``batchrek export``: nightly delta outputs merged into the current results.

    outputs (oldest first) ──records──▶ SQLite merge, newest wins per (id, operation)
        ──▶ results table + labels table ──▶ .sqlite | .csv | .parquet

The results table holds the current record of each pair (with the output it came
from); the labels table one row per label, text, face... of the current ok results.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from batchrek.export._current import RESULT_COLUMNS, build_current
from batchrek.export._labels import LABEL_COLUMNS, label_rows
from batchrek.export._read import read_outputs
from batchrek.export._write import export_format, labels_path, write_tables

__all__ = [
    "LABEL_COLUMNS",
    "RESULT_COLUMNS",
    "ExportSummary",
    "export_current",
    "label_rows",
    "labels_path",
]


@dataclass(frozen=True, slots=True)
class ExportSummary:
    records: int
    pairs: int
    label_rows: int
    files: tuple[str, ...]


async def export_current(
    outputs: Sequence[str],
    dest: str,
    *,
    s3_endpoint_url: str | None = None,
    region: str | None = None,
) -> ExportSummary:
    fmt = export_format(dest)
    staging = _staging_file(dest)
    try:
        async with AsyncExitStack() as stack:
            s3 = None
            if any(o.startswith("s3://") for o in outputs):
                import aioboto3

                session = aioboto3.Session(region_name=region)
                s3 = await stack.enter_async_context(
                    session.client("s3", endpoint_url=s3_endpoint_url)
                )
            db = sqlite3.connect(staging)
            try:
                db.execute("PRAGMA journal_mode = OFF")
                db.execute("PRAGMA synchronous = OFF")  # a scratch file until it is moved
                read, pairs, labels = await build_current(db, read_outputs(outputs, s3=s3))
                files = [dest] if fmt == "sqlite" else write_tables(db, dest, fmt)
            finally:
                db.close()
        if fmt == "sqlite":
            _move_into_place(staging, dest)
    finally:
        _remove(staging)
    return ExportSummary(read, pairs, labels, tuple(files))


def _staging_file(dest: str) -> str:
    """The merge database, beside the destination (same filesystem: a rename)."""
    folder = os.path.dirname(os.path.abspath(dest))
    os.makedirs(folder, exist_ok=True)
    fd, staging = tempfile.mkstemp(dir=folder, prefix=".batchrek-export-", suffix=".sqlite")
    os.close(fd)
    return staging


def _move_into_place(staging: str, dest: str) -> None:
    """A symlinked destination has its target replaced (the link stays); the file is
    readable like the other formats (mkstemp made it 0600)."""
    os.chmod(staging, 0o644)
    os.replace(staging, os.path.realpath(dest))


def _remove(path: str) -> None:
    Path(path).unlink(missing_ok=True)
