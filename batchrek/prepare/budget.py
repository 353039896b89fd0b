"""The run's memory for sources: a byte budget over everything fetched or held at once.

``max_source_bytes`` caps one source; this caps them all together. Without it, 64
workers each downloading a 50 MB file hold 3.2 GB, however small each is against
its own cap. A source reserves its size before its bytes are read and keeps the
reservation until its item is done (``Lease.release``):

- local file: its size from ``fstat``, reserved in the reader thread when the budget
  has room (``try_reserve``, no extra hop), else awaited on the event loop;
- S3 object: the manifest's size, else ``ContentLength``;
- URL: ``Content-Length``; when the server does not declare it (chunked, or a
  compressed encoding), ``max_source_bytes``, shrunk to what arrived once it ends.

Waiters are served in order (a big source is not starved by small ones). A run whose
budget is at least one ``max_source_bytes`` cannot deadlock: every reservation fits
an empty budget, and a holder never waits for a second reservation.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

__all__ = ["ByteBudget", "Lease"]


class ByteBudget:
    """``total`` bytes shared by every source in flight. ``reserve`` waits on the
    event loop; ``try_reserve`` and ``release`` may be called from any thread."""

    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError("a byte budget must be at least 1 byte")
        self.total = total
        self._used = 0
        self._lock = threading.Lock()
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self.peak = 0  # the most ever reserved at once
        self.waits = 0  # reservations that had to wait for room

    @property
    def used(self) -> int:
        return self._used

    def lease(self) -> Lease:
        return Lease(self)

    def try_reserve(self, n: int) -> bool:
        """Take ``n`` bytes now if they fit and nobody is waiting; any thread."""
        with self._lock:
            if self._waiters or self._used + n > self.total:
                return False
            self._take(n)
            return True

    async def reserve(self, n: int) -> None:
        """Take ``n`` bytes, waiting (in order) until they fit. ``n`` over the whole
        budget waits until nothing else is held, then takes the budget."""
        n = min(n, self.total)
        loop = asyncio.get_running_loop()
        with self._lock:
            if not self._waiters and self._used + n <= self.total:
                self._take(n)
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append((n, waiter))
            self.waits += 1
        try:
            await waiter
        except BaseException:
            woken: list[asyncio.Future[None]] = []
            with self._lock:
                # Still queued: never granted. Gone from the queue: ``_grant`` took
                # the bytes for it (perhaps just before the cancel): give them back.
                granted = (n, waiter) not in self._waiters
                if not granted:
                    self._waiters.remove((n, waiter))
                    woken = self._grant()
            if granted:
                self.release(n)
            else:
                _wake(woken)
            raise

    def release(self, n: int) -> None:
        """Give back ``n`` bytes and wake the waiters that now fit; any thread."""
        if n <= 0:
            return
        with self._lock:
            self._used -= n
            woken = self._grant()
        _wake(woken)

    def _take(self, n: int) -> None:
        self._used += n
        self.peak = max(self.peak, self._used)

    def _grant(self) -> list[asyncio.Future[None]]:
        """Under the lock: reserve for the waiters at the head that fit, in order."""
        woken = []
        while self._waiters:
            n, waiter = self._waiters[0]
            if self._used + n > self.total:
                break
            self._waiters.popleft()
            self._take(n)
            woken.append(waiter)
        return woken

    def __repr__(self) -> str:
        return (
            f"<ByteBudget used={self._used:,}/{self.total:,} peak={self.peak:,} "
            f"waiting={len(self._waiters)}>"
        )


def _wake(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        waiter.get_loop().call_soon_threadsafe(_grant_to, waiter)


def _grant_to(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Lease:
    """One item's share of the budget: what it reserved, given back in one call.

    After ``release`` the lease takes nothing more (a reader thread that finishes
    after its caller was cancelled cannot leak a reservation).
    """

    __slots__ = ("_budget", "_closed", "_lock", "held")

    def __init__(self, budget: ByteBudget) -> None:
        self._budget = budget
        self._lock = threading.Lock()
        self._closed = False
        self.held = 0

    def try_reserve(self, n: int) -> bool:
        with self._lock:
            if self._closed or not self._budget.try_reserve(n):
                return False
            self.held += n
            return True

    async def reserve(self, n: int) -> None:
        n = min(n, self._budget.total)
        await self._budget.reserve(n)
        with self._lock:
            if not self._closed:
                self.held += n
                return
        self._budget.release(n)  # released while waiting: hold nothing

    def shrink_to(self, n: int) -> None:
        """Keep only ``n`` of what is held (a download that reserved the cap)."""
        with self._lock:
            extra = self.held - n
            if extra <= 0:
                return
            self.held = n
        self._budget.release(extra)

    def release(self) -> None:
        with self._lock:
            self._closed = True
            held, self.held = self.held, 0
        self._budget.release(held)

    def __repr__(self) -> str:
        return f"<Lease held={self.held:,}{' released' if self._closed else ''}>"
