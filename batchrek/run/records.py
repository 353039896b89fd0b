"""The output records a run writes besides a successful call: errors, manifest
problems and reused analyses. One place builds each shape, so the record format
(README, "The output record") has one source."""

from __future__ import annotations

from dataclasses import replace

from batchrek.call import Operation
from batchrek.models import ErrorInfo, ImageInput, Item, ManifestProblem, Result

__all__ = ["MANIFEST_OPERATION", "error_result", "problem_result", "reused_result"]

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
