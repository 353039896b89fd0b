"""Resume of a local JSON Lines output: index it, repair it, compact it in place.

Before any new record is appended, ``load_file_resume``

1. repairs a torn last line (a kill in the middle of a write): the file is truncated
   back to its last newline and the pair is simply redone;
2. indexes the pairs that are done (see ``scan``);
3. compacts the output when any record is superseded. The kept records are copied to
   a temporary file in the same directory, fsynced and moved over the output with
   ``os.replace``: a kill during compaction leaves the old file whole, and the next
   resume removes the temporary file it left.

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
    ResumeIndex,
    ResumeState,
    Scanner,
    keep_lines,
    line_blocks,
    plan_compaction,
)

__all__ = ["load_file_resume"]


async def load_file_resume(
    path: str | os.PathLike[str], *, retry_failed: bool = False, compact: bool = True
) -> ResumeState:
    """``load_resume`` for a local file; a missing file is an empty output."""
    return await anyio.to_thread.run_sync(_load_file, Path(path), retry_failed, compact)


def _load_file(path: Path, retry_failed: bool, compact: bool) -> ResumeState:
    """Runs in a worker thread: the whole read, scan and rewrite, in one hop."""
    if compact:
        _remove_stale_temps(path)
    try:
        f = path.open("rb", buffering=0)
    except FileNotFoundError:
        return ResumeState(index=ResumeIndex())
    scan = Scanner(retry_failed=retry_failed)
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
    tmp = path.with_name(f".{path.name}.compact-{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.fchmod(fd, path.stat().st_mode & 0o777)
        first = 0
        for block in line_blocks(_read_upto(path, end)):
            _write_all(fd, keep_lines(block, first, dropped))
            first += block.count(b"\n")
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _truncate(path: Path, end: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, end)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(directory: Path) -> None:
    """Make a create, rename or truncate itself durable (POSIX needs the directory)."""
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_temps(path: Path) -> None:
    """A kill during compaction leaves its temporary file; the output is intact."""
    for stale in path.parent.glob(f".{path.name}.compact-*.tmp"):
        stale.unlink(missing_ok=True)
