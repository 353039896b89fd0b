"""The output records a run writes besides a successful call: errors, manifest
problems and reused analyses. One place builds each shape, so the record format
(README, "The output record") has one source."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from batchrek.call import Operation
from batchrek.models import ErrorInfo, ImageInput, Item, ManifestProblem, Notice, Result

__all__ = [
    "MANIFEST_OPERATION",
    "error_result",
    "problem_result",
    "record_line",
    "reused_result",
]

# The "operation" of a record that reports a malformed manifest line.
MANIFEST_OPERATION = "manifest"


def error_result(
    item: Item, op: Operation, info: ErrorInfo, *, attempts: int, inp: ImageInput | None = None
) -> Result:
    return Result(
        id=item.id,
        source=str(item.source),
        operation=op.method,
        status="error",
        input=inp.mode if inp is not None else "none",
        attempts=attempts,
        latency_ms=0.0,
        error=info,
        meta=item.meta,
        image=inp.image_record() if inp is not None else None,
        warnings=inp.warnings if inp is not None else (),
    )


def problem_result(problem: ManifestProblem) -> Result:
    return Result(
        id=problem.id,
        source=problem.raw,
        operation=MANIFEST_OPERATION,
        status="error",
        input="none",
        attempts=0,
        latency_ms=0.0,
        error=ErrorInfo("ManifestError", f"line {problem.line}: {problem.reason}"),
        extra={"duplicate_of": problem.duplicate.as_dict()} if problem.duplicate else {},
    )


def reused_result(earlier: Result, item: Item) -> Result:
    """``earlier``'s analysis, recorded for ``item`` (the same content, listed again)."""
    return replace(
        earlier,
        id=item.id,
        source=str(item.source),
        meta=item.meta,
        attempts=0,
        latency_ms=0.0,
        extra={"deduplicated_from": earlier.id},
    )


def record_line(result: Result) -> bytes:
    """The record as one JSON line, whatever its strings and ``meta`` hold.

    A manifest line is checked when it is read (nesting too deep to write is a
    ManifestError), but the writer must never crash on a record, and a finished
    call is billed: its record must land. So a record orjson refuses is written
    again with every string made valid UTF-8 (a file name with undecodable bytes
    comes out ``\\xff``-escaped), then, if that is not enough, without its ``meta``
    and with a warning saying so.
    """
    record = result.to_record()
    try:
        return orjson.dumps(record) + b"\n"
    except orjson.JSONEncodeError:
        pass
    cleaned = _valid_text(record)
    try:
        return orjson.dumps(cleaned) + b"\n"
    except orjson.JSONEncodeError as exc:
        reason = str(exc)
    cleaned.pop("meta", None)
    notice = Notice("MetaNotWritten", f"the item's meta could not be written ({reason})")
    cleaned["warnings"] = [*cleaned.get("warnings", []), notice.as_dict()]
    return orjson.dumps(cleaned) + b"\n"


def _valid_text(value: Any, depth: int = 0) -> Any:
    """``value`` with every string valid UTF-8 (lone surrogates escaped)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            try:  # a file name's undecodable bytes come back as themselves
                raw = value.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raw = value.encode("utf-8", "surrogatepass")
            return raw.decode("utf-8", "backslashreplace")
        return value
    if depth > 300:  # deeper than orjson writes anyway; the caller drops ``meta``
        return value
    if isinstance(value, dict):
        return {_valid_text(k, depth + 1): _valid_text(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_valid_text(v, depth + 1) for v in value]
    return value
