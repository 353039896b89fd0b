"""Every image under a local directory, walked in a worker thread a batch at a time.

Order is deterministic (depth first; within a directory its files in name order,
then its subdirectories in name order) so two runs, or two shards of one run, see
the same sequence. Hidden entries are skipped; symlinked directories are followed,
each real directory once (a link cycle is not walked twice).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Final

import anyio.to_thread

from batchrek.errors import ManifestUnreadable
from batchrek.manifest._images import has_image_extension
from batchrek.manifest._lines import RAW_CHARS, RecordBatches
from batchrek.models import Item, LocalPath, ManifestProblem

__all__ = ["walk_dir"]

BATCH: Final = 2000


async def walk_dir(root: str) -> RecordBatches:
    """``line`` counts the entries handed out; a folder that cannot be listed is a problem."""
    walker = _walk(root)
    count = 0
    while True:
        found = await anyio.to_thread.run_sync(_take, walker)
        if not found:
            return
        records: list[Item | ManifestProblem] = []
        for entry in found:
            count += 1
            if isinstance(entry, str):
                records.append(Item(entry, LocalPath(entry), None, None, None, count))
            elif count == 1 and entry.path == root:
                raise ManifestUnreadable(f"{entry.text}; check the path and permissions")
            else:
                records.append(ManifestProblem(count, entry.text, entry.path[:RAW_CHARS]))
        yield records


@dataclass(frozen=True, slots=True)
class _Unlistable:
    path: str
    text: str


def _take(walker: Iterator[str | _Unlistable]) -> list[str | _Unlistable]:
    return list(islice(walker, BATCH))


def _walk(root: str) -> Iterator[str | _Unlistable]:
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
            info = os.stat(folder)
        except OSError as exc:
            yield _Unlistable(folder, f"cannot list {folder}: {exc.strerror or exc}")
            continue
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        subfolders: list[str] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
                is_file = not is_dir and entry.is_file()
            except OSError:
                continue
            if is_dir:
                subfolders.append(entry.path)
            elif is_file and has_image_extension(entry.name):
                yield entry.path
        # Reversed onto the stack, so subfolders are walked in name order.
        stack.extend(reversed(subfolders))
