"""In-run deduplication: the same image listed twice is analysed (and billed) once.

Items naming the same content (``prepare.content_key``) share one analysis: the first
runs it, the others wait for it while it is in flight, and later ones reuse it while
it is in a bounded cache. The cache is bounded so memory stays flat on a 10M-line
manifest; duplicates further apart than ``capacity`` distinct images are analysed
again (and counted as such), which is the trade this tool makes by default.

Responses are kept as compact JSON bytes, not dicts: a parsed DetectLabels answer
takes several times the memory of its JSON, and the cache is the only place in a run
where results outlive their output line.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace

import anyio
import orjson

from batchrek.models import Result

__all__ = ["Deduper"]

_Stored = dict[str, tuple[Result, bytes | None]]


class Deduper:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._done: OrderedDict[str, _Stored] = OrderedDict()
        self._inflight: dict[str, anyio.Event] = {}
        self.hits = 0

    async def claim(self, key: str) -> Mapping[str, Result] | None:
        """Earlier results for ``key`` (by operation), or None: the caller analyses it.

        A None answer makes the caller the owner of ``key`` until it calls ``release``.
        """
        while True:
            cached = self._done.get(key)
            if cached is not None:
                self._done.move_to_end(key)
                self.hits += 1
                return {
                    op: replace(r, response=orjson.loads(raw)) if raw is not None else r
                    for op, (r, raw) in cached.items()
                }
            event = self._inflight.get(key)
            if event is None:
                self._inflight[key] = anyio.Event()
                return None
            await event.wait()
            if key not in self._done:
                # The owner failed without results (cancelled): try to own it ourselves.
                continue

    def release(self, key: str, results: Mapping[str, Result] | None) -> None:
        """Publish the owner's results (only reusable ones) and wake the waiters."""
        if results:
            self._done[key] = {
                op: (
                    replace(r, response=None),
                    orjson.dumps(r.response) if r.response is not None else None,
                )
                for op, r in results.items()
            }
            self._done.move_to_end(key)
            while len(self._done) > self.capacity:
                self._done.popitem(last=False)
        event = self._inflight.pop(key, None)
        if event is not None:
            event.set()

    def __repr__(self) -> str:
        return (
            f"Deduper(cached={len(self._done)}/{self.capacity}, "
            f"inflight={len(self._inflight)}, hits={self.hits})"
        )
