"""Blocking calls a run can walk away from: daemon threads, never joined.

A read of a FIFO nobody writes to, or of a file on a hung network mount, blocks its
thread in the kernel, and nothing can interrupt it. ``ThreadPoolExecutor`` and
anyio's worker threads are joined when the interpreter exits (and
``shutdown(wait=True)`` joins them sooner), so one such read would keep a stopped run
alive for ever: SIGTERM would not end it. Work that may block on something outside
the process runs here instead: the caller's wait is cancellable at once, the thread
is a daemon, and ``shutdown`` never waits. A thread still blocked when the process
exits dies with it.

Only for reads. Nothing that must finish (a write of the output) belongs here.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["DaemonExecutor", "run_abandonable", "submit"]

T = TypeVar("T")

_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class DaemonExecutor:
    """At most ``workers`` daemon threads running submitted calls in order.

    Threads start on demand and stay (idle threads cost a blocked ``get``); a
    cancelled future that has not started is skipped.
    """

    def __init__(self, workers: int, *, name: str) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._max = workers
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._name} is shut down")
            self._jobs.put((future, fn, args))
            if self._idle == 0 and len(self._threads) < self._max:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            elif self._idle:
                self._idle -= 1  # an idle thread takes this job
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, fn, args = job
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as exc:  # handed to the waiting caller
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            with self._lock:
                self._idle += 1

    def shutdown(self) -> None:
        """Refuse new work and let idle threads go; never waits for a running call."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._jobs.put(None)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<DaemonExecutor {self._name} {state} threads={len(self._threads)}/{self._max}>"


_SHARED = DaemonExecutor(8, name="batchrek-blocking")


def submit(fn: Callable[..., T], *args: Any) -> Future[T]:
    """``fn(*args)`` on the shared daemon threads; for callers that must act when an
    abandoned call finally ends (close what it opened)."""
    return _SHARED.submit(fn, *args)


async def run_abandonable(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a daemon thread; a cancelled caller stops waiting at once
    (the call itself runs on, or stays blocked, alone)."""
    return await asyncio.wrap_future(_SHARED.submit(fn, *args))
