"""ImagePool: imaging runs off the event loop, a bounded number at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from batchrek.errors import ItemError
from batchrek.limits import limits_for
from batchrek.prepare import ImagePool, imaging
from batchrek.testing import corpus

LABELS = limits_for("detect_labels")


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Record the thread each call of ``imaging.<name>`` runs in."""
    threads: list[int] = []
    real: Callable[..., Any] = getattr(imaging, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(imaging, name, spy)
    return threads


@pytest.mark.anyio
async def test_transcode_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads = _spy(monkeypatch, "transcode")
    data = corpus.photo(fmt="WEBP")
    pool = ImagePool(processes=False)
    await pool.transcode(data, imaging.inspect(data), LABELS)
    assert len(threads) == 1
    assert threads[0] != threading.get_ident()


@pytest.mark.anyio
async def test_inspect_of_a_big_image_runs_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads = _spy(monkeypatch, "inspect")
    big = corpus.photo() + b"\0" * (300 * 1024)  # trailing data after the JPEG end
    await ImagePool(processes=False).inspect(big)
    assert len(threads) == 1
    assert threads[0] != threading.get_ident()


@pytest.mark.anyio
async def test_inspect_of_a_small_image_stays_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread hop costs the loop more than reading a small header does."""
    threads = _spy(monkeypatch, "inspect")
    await ImagePool(processes=False).inspect(corpus.photo())
    assert threads == [threading.get_ident()]


@pytest.mark.anyio
async def test_transcodes_never_exceed_max_decodes(monkeypatch: pytest.MonkeyPatch) -> None:
    lock, gate, entered = threading.Lock(), threading.Event(), threading.Semaphore(0)
    running, peak = 0, 0

    def held(*args: Any, **kwargs: Any) -> Any:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        entered.release()
        gate.wait(timeout=10)
        with lock:
            running -= 1
        return None

    monkeypatch.setattr(imaging, "transcode", held)
    pool = ImagePool(max_decodes=2, processes=False)
    data = corpus.photo()
    header = imaging.inspect(data)
    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(pool.transcode, data, header, LABELS)
        for _ in range(2):  # both slots taken; the other four wait for a token
            await anyio.to_thread.run_sync(entered.acquire)
        gate.set()
    assert peak == 2


@pytest.mark.anyio
async def test_process_pool_transcodes() -> None:
    data = corpus.photo(fmt="WEBP", orientation=6)
    async with ImagePool(max_decodes=1) as pool:
        out = await pool.transcode(data, await pool.inspect(data), LABELS)
    assert (out.sent.format, out.sent.width, out.sent.height) == ("JPEG", 640, 480)


@pytest.mark.anyio
async def test_process_pool_raises_the_item_error() -> None:
    data = corpus.truncated(corpus.animated_gif())
    async with ImagePool(max_decodes=1) as pool:
        with pytest.raises(ItemError) as caught:
            await pool.transcode(data, await pool.inspect(data), LABELS)
    assert caught.value.code == "CorruptImage"


@pytest.mark.anyio
async def test_closed_pool_refuses_work() -> None:
    pool = ImagePool(processes=False)
    pool.close()
    with pytest.raises(RuntimeError):
        await pool.inspect(corpus.photo())


def test_repr_shows_live_state() -> None:
    assert "decoding=0/3" in repr(ImagePool(max_decodes=3, processes=False))
