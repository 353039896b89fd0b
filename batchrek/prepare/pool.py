"""Imaging work off the event loop, with a bound on how many images are decoded at once.

    ImagePool.inspect   ─▶ JPEG/PNG: inline or a worker thread (header only: cheap)
                        ─▶ any other format: worker process (some Pillow plugins
                           decode while opening), at most ``max_decodes`` at a time
    ImagePool.transcode ─▶ worker process, at most ``max_decodes`` at a time

Processes, not threads, by measurement (scripts/bench_imaging.py, 2 cores, 24 MP
JPEGs, 2 workers, two runs): processes were as fast or faster (2.57 vs 2.11 and 1.63
vs 1.48 images/s) and kept the event loop responsive: a 10 ms ticker was at worst
13-22 ms late, against 58-360 ms (p99 47-88 ms) with two *threads*. Pillow releases
the GIL inside decode/resample/encode, yet the loop thread queues for it behind two
busy threads that re-take it between calls. Pickling an 11 MB image costs 2-5 ms.
``processes=False`` keeps everything in threads (tests, tiny images).

Memory: a 24 MP image is ~100 MB decoded. A transcode waits for a slot *before* its
bytes go to a worker, so 64 images in flight hold 64 encoded files but only
``max_decodes`` bitmaps (default: one per usable core).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from PIL import _imaging as pillow_core

import batchrek.prepare.imaging as imaging
from batchrek.errors import ItemError
from batchrek.limits import ImageLimits
from batchrek.prepare.imaging import ImageHeader, Transcoded

# ``imaging.inspect`` and ``imaging.transcode`` are looked up at each call (tests patch
# them on the package); ``_transcode_in_worker`` stays a module-level function, so a
# worker process can unpickle it by name.

__all__ = ["ImagePool", "usable_cores"]

T = TypeVar("T")

# Header-only inspection of a small image (~80 us) is cheaper inline than the
# ~140 us of loop CPU a thread hop costs; big ones may hide slow metadata.
_INLINE_INSPECT_BYTES = 256 * 1024
_BLOCKS_PER_DECODE = 8  # Pillow blocks are 16 MB: 128 MB kept per decode slot


def usable_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _reuse_pillow_memory(decodes: int) -> None:
    """Let Pillow keep freed blocks for the next image. Otherwise every 24 MP decode
    page-faults ~100 MB of fresh memory: ~40 ms of system time per image, measured.
    Process-wide, so it only ever raises the setting (PILLOW_BLOCKS_MAX)."""
    wanted = _BLOCKS_PER_DECODE * decodes
    if pillow_core.get_blocks_max() < wanted:
        pillow_core.set_blocks_max(wanted)


def _init_worker() -> None:
    # Ctrl-C reaches the whole process group; the parent decides how to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _reuse_pillow_memory(1)


def _inspect_in_worker(data: bytes, accepted: frozenset[str]) -> ImageHeader:
    return imaging.inspect(data, accepted)


def _transcode_in_worker(
    data: bytes, header: ImageHeader, limits: ImageLimits, cap: int | None
) -> Transcoded:
    # An ItemError raised here pickles (errors.ItemError.__reduce__) and is re-raised
    # by future.result() in the parent as itself.
    return imaging.transcode(data, header, limits, cap=cap)


class ImagePool:
    """Runs the imaging functions off the event loop, ``max_decodes`` transcodes at once."""

    def __init__(
        self,
        max_decodes: int | None = None,
        *,
        processes: bool = True,
        accepted: frozenset[str] | None = None,
    ) -> None:
        """``accepted``: the formats this run reads (``input_formats``), all by default."""
        total = usable_cores() if max_decodes is None else max_decodes
        if total < 1:
            raise ValueError("max_decodes must be at least 1")
        self.accepted = imaging.accepted_formats() if accepted is None else accepted
        self._limiter = anyio.CapacityLimiter(total)
        self._processes = processes
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False
        if not processes:
            _reuse_pillow_memory(total)

    @property
    def max_decodes(self) -> int:
        return int(self._limiter.total_tokens)

    @property
    def decoding(self) -> int:
        """Transcodes running now."""
        return self._limiter.borrowed_tokens

    @property
    def waiting(self) -> int:
        """Transcodes waiting for a decode slot."""
        return self._limiter.statistics().tasks_waiting

    async def inspect(self, data: bytes) -> ImageHeader:
        self._check_open()
        if data and imaging.fast_format(data) not in imaging.HEADER_IN_PROCESS:
            # Not JPEG or PNG: transcoded anyway, and its plugin may decode while
            # opening, so the header is read where decoding happens.
            async with self._limiter:
                return await self._off_loop(_inspect_in_worker, data, self.accepted)
        if len(data) <= _INLINE_INSPECT_BYTES:
            return imaging.inspect(data, self.accepted)
        return await anyio.to_thread.run_sync(imaging.inspect, data, self.accepted)

    async def transcode(
        self,
        data: bytes,
        header: ImageHeader,
        limits: ImageLimits,
        *,
        cap: int | None = None,
    ) -> Transcoded:
        self._check_open()
        async with self._limiter:
            return await self._off_loop(_transcode_in_worker, data, header, limits, cap)

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker process (a thread with ``processes=False``); the
        caller holds a decode slot."""
        if not self._processes:
            return await anyio.to_thread.run_sync(partial(fn, *args))
        try:
            return await self._in_process(fn, *args)
        except BrokenProcessPool:
            # A worker died (out of memory, killed) and took the pool with it; a
            # fresh pool gets this image once more: a second death is its fault.
            try:
                return await self._in_process(fn, *args)
            except BrokenProcessPool:
                raise ItemError(
                    "TranscodeCrashed", "the image worker process died twice on this image"
                ) from None

    async def _in_process(self, fn: Callable[..., T], *args: Any) -> T:
        pool = self._pool()
        try:
            future: Future[T] = pool.submit(fn, *args)
            try:
                # A thread waits on the future (holding no GIL): any anyio backend works.
                return await anyio.to_thread.run_sync(future.result, abandon_on_cancel=True)
            finally:
                future.cancel()  # no-op once it runs or ran
                # An error raised here holds this frame in its traceback, and the future
                # holds the error: a cycle that would keep the callers' frames, and the
                # image bytes in them, alive until a full garbage collection (measured:
                # gigabytes with many large sources). Drop the future to break it.
                del future
        except BrokenProcessPool:
            if self._executor is pool:  # others may have replaced it already
                self._shutdown()
            raise

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # forkserver/spawn: a fresh interpreter, safe with the parent's threads.
            methods = multiprocessing.get_all_start_methods()
            method = "forkserver" if "forkserver" in methods else "spawn"
            self._executor = ProcessPoolExecutor(
                max_workers=self.max_decodes,
                mp_context=multiprocessing.get_context(method),
                initializer=_init_worker,
            )
        return self._executor

    def _shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def close(self) -> None:
        """Refuse new work and let the workers go once their current image is done."""
        self._closed = True
        self._shutdown()

    async def __aenter__(self) -> ImagePool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("ImagePool is closed")

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        kind = "processes" if self._processes else "threads"
        return (
            f"<ImagePool {state} {kind} decoding={self.decoding}/{self.max_decodes} "
            f"waiting={self.waiting}>"
        )
