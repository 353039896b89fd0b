"""Every image under a local directory, walked in a daemon thread a batch at a time.

Order is deterministic (depth first; within a directory its files in name order,
then its subdirectories in name order) so two runs, or two shards of one run, see
the same sequence. What the walk keeps: regular files with an image extension (the
extensions of the formats the run accepts). What it skips, counted by reason
(``ReadOptions.on_skip``, the summary's ``listing_skipped``): hidden entries, other
extensions, FIFOs, sockets and devices, broken links, and symbolic links whose
target is outside the root (unless ``follow_outside_symlinks``). Symlinked
directories inside the root are followed, each real directory once (a link cycle is
not walked twice).

A name that is not valid UTF-8 (Linux allows any bytes) keeps its real path as the
source, so it is read, and gets an id with the bad bytes escaped (``\\xff``), so its
record can be written and resumed.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Final

from batchrek.blocking import run_abandonable
from batchrek.errors import ManifestUnreadable
from batchrek.manifest._images import (
    SKIP_BROKEN_LINK,
    SKIP_EXTENSION,
    SKIP_HIDDEN,
    SKIP_OUTSIDE_ROOT,
    SKIP_SPECIAL,
    SKIP_UNREADABLE,
    has_image_extension,
)
from batchrek.manifest._lines import RAW_CHARS, RecordBatches
from batchrek.manifest._options import ReadOptions
from batchrek.models import Item, LocalPath, ManifestProblem

__all__ = ["display_path", "walk_dir"]

BATCH: Final = 2000


def display_path(path: str) -> str:
    """``path`` as text that can be written: undecodable bytes escaped."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")
    return path


async def walk_dir(root: str, options: ReadOptions | None = None) -> RecordBatches:
    """``line`` counts the entries handed out; a folder that cannot be listed is a
    problem. The walk runs on a daemon thread: a hung mount never keeps a stopped run
    alive."""
    options = options or ReadOptions()
    skipped: Counter[str] = Counter()
    walker = _walk(root, options, skipped)
    count = 0
    while True:
        found = await run_abandonable(_take, walker)
        for reason, n in skipped.items():
            options.skipped(reason, n)
        skipped.clear()
        if not found:
            return
        records: list[Item | ManifestProblem] = []
        for entry in found:
            count += 1
            if isinstance(entry, str):
                shown = display_path(entry)
                records.append(Item(shown, LocalPath(entry), None, None, None, count))
            elif count == 1 and entry.path == root:
                raise ManifestUnreadable(f"{entry.text}; check the path and permissions")
            else:
                records.append(
                    ManifestProblem(count, entry.text, display_path(entry.path)[:RAW_CHARS])
                )
        yield records


@dataclass(frozen=True, slots=True)
class _Unlistable:
    path: str
    text: str


def _take(walker: Iterator[str | _Unlistable]) -> list[str | _Unlistable]:
    return list(islice(walker, BATCH))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _walk(root: str, options: ReadOptions, skipped: Counter[str]) -> Iterator[str | _Unlistable]:
    real_root = os.path.realpath(root)
    extensions = options.extensions
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
            info = os.stat(folder)
        except OSError as exc:
            yield _Unlistable(folder, f"cannot list {display_path(folder)}: {exc.strerror or exc}")
            continue
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        subfolders: list[str] = []
        for entry in entries:
            if entry.name.startswith("."):
                skipped[SKIP_HIDDEN] += 1
                continue
            try:
                if entry.is_symlink():
                    target = os.path.realpath(entry.path)
                    if not os.path.exists(target):
                        skipped[SKIP_BROKEN_LINK] += 1
                        continue
                    if not options.follow_outside_symlinks and not _inside(target, real_root):
                        skipped[SKIP_OUTSIDE_ROOT] += 1
                        continue
                is_dir = entry.is_dir()
                is_file = not is_dir and entry.is_file()
            except OSError:
                skipped[SKIP_UNREADABLE] += 1
                continue
            if is_dir:
                subfolders.append(entry.path)
            elif not is_file:
                skipped[SKIP_SPECIAL] += 1
            elif has_image_extension(entry.name, extensions):
                yield entry.path
            else:
                skipped[SKIP_EXTENSION] += 1
        # Reversed onto the stack, so subfolders are walked in name order.
        stack.extend(reversed(subfolders))
