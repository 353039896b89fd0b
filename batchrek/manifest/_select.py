"""Which manifest items this run takes: its shard, then at most ``limit`` of them.

One filter for the run and the dry run, so a dry run prices exactly what the run
would do. Manifest problems pass through untouched (each shard reports the malformed
lines it reads: they have no stable id to shard by).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from batchrek.models import Item, ManifestProblem

__all__ = ["Selection", "shard_of"]


def shard_of(item_id: str, shard_count: int) -> int:
    """A stable partition of ids: the same id lands in the same shard on every pod."""
    digest = hashlib.blake2b(item_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shard_count


@dataclass(frozen=True, slots=True)
class Selection:
    """This shard's items (``shard_index`` of ``shard_count``), at most ``limit``."""

    shard_index: int = 0
    shard_count: int = 1
    limit: int | None = None

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
        """``entries`` less other shards' items, ending after ``limit`` items."""
        taken = 0
        limit = self.limit
        if limit == 0:
            return
        async for entry in entries:
            if isinstance(entry, ManifestProblem):
                yield entry
                continue
            if not self.mine(entry.id):
                if on_other_shard is not None:
                    on_other_shard()
                continue
            taken += 1
            yield entry
            if limit is not None and taken >= limit:
                return
