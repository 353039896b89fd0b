"""The current view: nightly deltas merged into one result per (id, operation).

Merged in SQLite (stdlib), on disk: ``INSERT OR REPLACE`` keyed by (id, operation) in
reading order makes the newest record win without holding every pair in memory, and
the same database is the ``.sqlite`` export as it stands. The labels table is then
derived from the current results only, so a re-analysed image's old labels are gone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson

from batchrek.export._labels import LABEL_COLUMNS, label_rows

__all__ = ["RESULT_COLUMNS", "build_current"]

RESULT_COLUMNS = (
    "id",
    "operation",
    "status",
    "source",
    "content",
    "params_digest",
    "input",
    "reused_from",
    "error_code",
    "error_message",
    "output",
    "response",
    "meta",
)

_SCHEMA = """
CREATE TABLE results (
    id TEXT NOT NULL, operation TEXT NOT NULL, status TEXT, source TEXT, content TEXT,
    params_digest TEXT, input TEXT, reused_from TEXT, error_code TEXT, error_message TEXT,
    output TEXT, response TEXT, meta TEXT,
    PRIMARY KEY (id, operation)
) WITHOUT ROWID;
CREATE TABLE labels (
    id TEXT NOT NULL, operation TEXT NOT NULL, kind TEXT, name TEXT, confidence REAL,
    "left" REAL, top REAL, width REAL, height REAL, detail TEXT
);
"""
_INSERT = f"INSERT OR REPLACE INTO results VALUES ({', '.join('?' * len(RESULT_COLUMNS))})"
_LABEL = f"INSERT INTO labels VALUES ({', '.join('?' * len(LABEL_COLUMNS))})"
_BATCH = 5000


def _json(value: Any) -> str | None:
    return orjson.dumps(value).decode() if value is not None else None


def _row(where: str, r: dict[str, Any]) -> tuple[Any, ...]:
    raw_error = r.get("error")
    error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    reused = r.get("reused_from") or r.get("deduplicated_from")
    if isinstance(reused, dict):
        reused = reused.get("id")
    return (
        str(r["id"]),
        str(r["operation"]),
        r.get("status"),
        r.get("source"),
        r.get("content"),
        r.get("params_digest"),
        r.get("input"),
        reused,
        error.get("code"),
        error.get("message"),
        where,
        _json(r.get("response")),
        _json(r.get("meta")),
    )


async def build_current(
    db: sqlite3.Connection, records: AsyncIterator[tuple[str, dict[str, Any]]]
) -> tuple[int, int, int]:
    """Fill ``results`` and ``labels``; returns (records read, pairs, label rows)."""
    db.executescript(_SCHEMA)
    read = 0
    batch: list[tuple[Any, ...]] = []
    async for where, record in records:
        read += 1
        batch.append(_row(where, record))
        if len(batch) >= _BATCH:
            db.executemany(_INSERT, batch)  # in order: a later record replaces
            batch.clear()
    db.executemany(_INSERT, batch)
    labels = 0
    out: list[tuple[Any, ...]] = []
    for item_id, operation, response in _ok_results(db):
        out.extend(label_rows(item_id, operation, orjson.loads(response) if response else None))
        if len(out) >= _BATCH:
            db.executemany(_LABEL, out)
            labels += len(out)
            out.clear()
    db.executemany(_LABEL, out)
    labels += len(out)
    db.commit()
    pairs = db.execute("SELECT count(*) FROM results").fetchone()[0]
    return read, int(pairs), labels


def _ok_results(db: sqlite3.Connection) -> Iterator[tuple[str, str, str | None]]:
    """The ok results in pages (keyset pagination), so the labels can be inserted
    between pages and memory holds one page, never the whole table."""
    after = ("", "")
    while True:
        page = db.execute(
            "SELECT id, operation, response FROM results WHERE status = 'ok' "
            "AND (id, operation) > (?, ?) ORDER BY id, operation LIMIT ?",
            (*after, _BATCH),
        ).fetchall()
        if not page:
            return
        yield from page
        after = (page[-1][0], page[-1][1])
