"""Resume of a local JSON Lines output: index it, repair it, compact it in place.

Before any new record is appended, ``load_file_resume``

1. repairs a torn last line (a kill in the middle of a write): the file is truncated
   back to its last newline and the pair is simply redone;
2. indexes the pairs that are done (see ``scan``);
3. compacts the output when any record is superseded. The kept records are copied to
   a new temporary file in the same directory (created exclusively, never through a
   symlink: ``batchrek.safefile``), fsynced and moved over the output with
   ``os.replace``: a kill during compaction leaves the old file whole, and the next
   resume removes the temporary file it left. An output that is a symlink is resolved
   first: the file it points to is rewritten and the link stays.

Whether the file is batchrek's to rewrite at all is ``output.guard``'s question, asked
before this runs.

The whole read, scan and rewrite runs in one worker thread: one hop, not one per chunk.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import anyio

from batchrek.output.resume.scan import (
    CHUNK_BYTES,
    RedoFailed,
    ResumeIndex,
    ResumeState,
    Scanner,
    keep_lines,
    line_blocks,
    plan_compaction,
)
from batchrek.safefile import fsync_dir, temp_beside, write_all

__all__ = ["load_file_resume"]


async def load_file_resume(
    path: str | os.PathLike[str], *, redo_failed: RedoFailed = False, compact: bool = True
) -> ResumeState:
    """``load_resume`` for a local file; a missing file is an empty output."""
    return await anyio.to_thread.run_sync(_load_file, path, redo_failed, compact)


def _load_file(
    given: str | os.PathLike[str], redo_failed: RedoFailed, compact: bool
) -> ResumeState:
    """Runs in a worker thread: the whole read, scan and rewrite, in one hop."""
    path = Path(os.path.realpath(given))  # a symlink's target is rewritten, the link stays
    if compact:
        _remove_stale_temps(path)
    try:
        f = path.open("rb", buffering=0)
    except FileNotFoundError:
        return ResumeState(index=ResumeIndex())
    scan = Scanner(redo_failed=redo_failed)
    with f:
        while chunk := f.read(CHUNK_BYTES):
            scan.feed(chunk)
        size = f.tell()
    torn = scan.end_segment()
    plan = plan_compaction(scan)
    del scan
    if not compact:
        return plan.state
    if len(plan.dropped):
        _rewrite(path, size - torn, plan.dropped)
        return replace(plan.state, compacted=True)
    if torn:
        _truncate(path, size - torn)
    return plan.state


def _read_upto(path: Path, end: int) -> Iterator[bytes]:
    with path.open("rb", buffering=0) as f:
        left = end
        while left > 0 and (chunk := f.read(min(CHUNK_BYTES, left))):
            left -= len(chunk)
            yield chunk


def _rewrite(path: Path, end: int, dropped: array[int]) -> None:
    fd, tmp = temp_beside(str(path), "compact")
    try:
        os.fchmod(fd, path.stat().st_mode & 0o777)
        first = 0
        for block in line_blocks(_read_upto(path, end)):
            write_all(fd, keep_lines(block, first, dropped))
            first += block.count(b"\n")
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(str(path.parent))


def _truncate(path: Path, end: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, end)
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_temps(path: Path) -> None:
    """A kill during compaction leaves its temporary file; the output is intact. Only
    regular files of that name are removed (a symlink there is left alone)."""
    for stale in path.parent.glob(f".{path.name}.compact-*.tmp"):
        if stale.is_file() and not stale.is_symlink():
            stale.unlink(missing_ok=True)
