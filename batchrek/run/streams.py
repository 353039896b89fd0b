"""anyio memory-stream send and receive without the scheduling round trip when they
would not wait.

``MemoryObjectSendStream.send`` and ``.receive`` begin with a checkpoint: the task
gives up the event loop for one iteration even when the buffer has room or an item.
Four such hand-offs per image (producer to worker, worker to writer) cost a loop
iteration each, an epoll call included; these helpers try the ``_nowait`` form first
and fall back to the waiting form, so cancellation and back-pressure are unchanged.
Every image still awaits its service call, so no task runs unchecked for long.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["items", "send"]

T = TypeVar("T")


async def send(stream: MemoryObjectSendStream[T], item: T) -> None:
    try:
        stream.send_nowait(item)
    except anyio.WouldBlock:
        await stream.send(item)


async def items(stream: MemoryObjectReceiveStream[T]) -> AsyncIterator[T]:
    """Like ``async for item in stream``, until the senders close it."""
    while True:
        try:
            item = stream.receive_nowait()
        except anyio.WouldBlock:
            try:
                item = await stream.receive()
            except anyio.EndOfStream:
                return
        except anyio.EndOfStream:
            return
        yield item
