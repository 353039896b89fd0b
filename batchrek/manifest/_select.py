"""Which manifest items this run takes: its shard, each id once, then at most
``limit`` of them.

One filter for the run and the dry run, so a dry run prices exactly what the run
would do. Manifest problems pass through untouched (each shard reports the malformed
lines it reads: they have no stable id to shard by).

An id names one image (the output holds one record per id and operation). A later
line that repeats an id of this shard becomes a ``ManifestProblem`` naming the first
line, and is never called: billing it would write a second result for the same pair,
and the next resume would keep only one of them. Every line of an id lands in the
same shard, so each shard's own set (``SeenIds``, ~15 bytes an id) sees every repeat.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from batchrek.manifest._seen import SeenIds
from batchrek.models import DuplicateId, Item, ManifestProblem

__all__ = ["Selection", "repeated_id", "shard_of"]


def shard_of(item_id: str, shard_count: int) -> int:
    """A stable partition of ids: the same id lands in the same shard on every pod."""
    digest = hashlib.blake2b(item_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shard_count


@dataclass(frozen=True, slots=True)
class Selection:
    """This shard's items (``shard_index`` of ``shard_count``), each id once (unless
    ``unique_ids`` is off), at most ``limit``."""

    shard_index: int = 0
    shard_count: int = 1
    limit: int | None = None
    unique_ids: bool = True

    def __post_init__(self) -> None:
        if self.shard_count < 1 or not 0 <= self.shard_index < self.shard_count:
            raise ValueError(f"shard {self.shard_index} of {self.shard_count} does not exist")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit must be >= 0, not {self.limit}")

    def mine(self, item_id: str) -> bool:
        return self.shard_count == 1 or shard_of(item_id, self.shard_count) == self.shard_index

    async def select(
        self,
        entries: AsyncIterator[Item | ManifestProblem],
        *,
        on_other_shard: Callable[[], None] | None = None,
    ) -> AsyncIterator[Item | ManifestProblem]:
        """``entries`` less other shards' items, repeated ids turned into problems,
        ending after ``limit`` items."""
        taken = 0
        limit = self.limit
        if limit == 0:
            return
        seen = SeenIds() if self.unique_ids else None
        ordinal = 0
        async for entry in entries:
            if isinstance(entry, ManifestProblem):
                yield entry
                continue
            ordinal += 1
            if not self.mine(entry.id):
                if on_other_shard is not None:
                    on_other_shard()
                continue
            if seen is not None:
                line = entry.line or ordinal
                first = seen.add(entry.id, line)
                if first is not None:
                    yield repeated_id(entry, line, first or None)
                    continue
            taken += 1
            yield entry
            if limit is not None and taken >= limit:
                return


def repeated_id(item: Item, line: int, first_line: int | None) -> ManifestProblem:
    """The problem a repeated id becomes: it names the first line (when known)."""
    where = f"line {first_line}" if first_line else "an earlier line"
    return ManifestProblem(
        line=line,
        reason=(
            f"id {item.id!r} is already used by {where}; this line was not analysed "
            "(an id names one image: give this one its own id)"
        ),
        raw=str(item.source),
        duplicate=DuplicateId(id=item.id, first_line=first_line),
    )
