"""How a manifest is read: what a listing keeps, and when a file is not a manifest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from batchrek.manifest._images import IMAGE_EXTENSIONS

__all__ = ["ReadOptions", "SkipCounter"]

SkipCounter = Callable[[str, int], None]
"""Told ``(reason, count)`` for entries a listing skipped (``_images.SKIP_*``)."""


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """``extensions``: what a folder, prefix or inventory listing keeps (lower case, no
    dot). ``follow_outside_symlinks``: a folder walk follows links that leave its
    root (off: they are skipped and counted). ``max_leading_bad_lines``: when the
    first this-many entries are all malformed, the file is not a manifest (0: never
    judged so). ``max_bad_line_share``: once ``BAD_SHARE_AFTER`` entries are read,
    more than this share malformed means the same (1.0: never). ``on_skip``: told
    about every entry a listing skipped, with the reason."""

    extensions: frozenset[str] = IMAGE_EXTENSIONS
    follow_outside_symlinks: bool = False
    max_leading_bad_lines: int = 100
    max_bad_line_share: float = 0.5
    on_skip: SkipCounter | None = field(default=None, compare=False)

    def skipped(self, reason: str, count: int = 1) -> None:
        if self.on_skip is not None and count:
            self.on_skip(reason, count)
