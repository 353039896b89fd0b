from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from batchrek import output
from batchrek.errors import OutputFailed
from batchrek.output import JsonlFileSink, Sink, load_resume
from batchrek.output import file as sinks

pytestmark = pytest.mark.anyio


def rec(n: int, pad: int = 0) -> bytes:
    return b'{"id":"%d","source":"s","operation":"op","status":"ok","pad":"%s"}\n' % (
        n,
        b"x" * pad,
    )


async def test_records_wait_in_the_buffer_until_a_flush(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    sink = JsonlFileSink(out)
    await sink.write(rec(1))
    assert not out.exists()


async def test_flush_hands_records_to_the_file(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    sink = JsonlFileSink(out)
    for n in range(3):
        await sink.write(rec(n))
    await sink.flush()
    assert out.read_bytes() == rec(0) + rec(1) + rec(2)


async def test_a_full_buffer_is_written_as_one_batch_of_whole_lines(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    sink = JsonlFileSink(out, batch_bytes=250)
    records = [rec(n, pad=100 - len(rec(n))) for n in range(10)]  # 100 bytes each
    for r in records:
        await sink.write(r)
    assert (sink.batches, out.read_bytes()) == (3, b"".join(records[:9]))


async def test_a_plain_flush_does_not_fsync(tmp_path: Path) -> None:
    sink = JsonlFileSink(tmp_path / "out.jsonl")
    await sink.write(rec(1))
    await sink.flush()
    assert sink.fsyncs == 0


async def test_a_durable_flush_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    sink = JsonlFileSink(tmp_path / "sub" / "out.jsonl")
    await sink.write(rec(1))
    await sink.flush(durable=True)
    assert len(synced) == 2  # the new file's directory entry, then the file


async def test_a_durable_flush_with_nothing_new_skips_the_fsync(tmp_path: Path) -> None:
    sink = JsonlFileSink(tmp_path / "out.jsonl")
    await sink.write(rec(1))
    await sink.flush(durable=True)
    await sink.flush(durable=True)
    assert sink.fsyncs == 1


async def test_aclose_writes_and_fsyncs_what_is_buffered(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    sink = JsonlFileSink(out)
    await sink.write(rec(1))
    await sink.aclose()
    assert (out.read_bytes(), sink.fsyncs) == (rec(1), 1)


async def test_aclose_is_idempotent(tmp_path: Path) -> None:
    sink = JsonlFileSink(tmp_path / "out.jsonl")
    await sink.write(rec(1))
    await sink.aclose()
    await sink.aclose()
    assert sink.records_written == 1


async def test_aclose_lands_records_even_when_cancelled(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    sink = JsonlFileSink(out)
    await sink.write(rec(1))
    with anyio.CancelScope() as scope:
        scope.cancel()
        await sink.aclose()
    assert out.read_bytes() == rec(1)


async def test_writing_after_close_raises(tmp_path: Path) -> None:
    sink = JsonlFileSink(tmp_path / "out.jsonl")
    await sink.aclose()
    with pytest.raises(anyio.ClosedResourceError):
        await sink.write(rec(1))


async def test_the_sink_appends_to_an_existing_output(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(rec(0))
    async with JsonlFileSink(out) as sink:
        await sink.write(rec(1))
    assert out.read_bytes() == rec(0) + rec(1)


async def test_truncate_starts_the_output_afresh(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(rec(0))
    async with JsonlFileSink(out, truncate=True) as sink:
        await sink.write(rec(1))
    assert out.read_bytes() == rec(1)


@pytest.mark.parametrize("bad", [b'{"id":"1"}', b'{"id":"1"}\n{"id":"2"}\n', b"", b"\n"])
async def test_a_record_must_be_exactly_one_line(tmp_path: Path, bad: bytes) -> None:
    sink = JsonlFileSink(tmp_path / "out.jsonl")
    with pytest.raises(ValueError, match="one JSON line"):
        await sink.write(bad)


async def test_a_failed_batch_is_rolled_back_to_whole_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(rec(0))
    real_write = os.write

    def half_then_full_disk(fd: int, data: memoryview) -> int:
        if len(data) > 10:
            real_write(fd, data[:10])
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", half_then_full_disk)
    sink = JsonlFileSink(out)
    await sink.write(rec(1))
    with pytest.raises(OutputFailed, match="No space"):
        await sink.flush()
    assert out.read_bytes() == rec(0)


async def test_whole_records_the_os_took_before_a_failure_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(rec(0))
    real_write = os.write
    calls = []

    def one_and_a_half_then_full(fd: int, data: memoryview) -> int:
        calls.append(len(data))
        if len(calls) == 1:  # the OS takes record 1 and half of record 2
            return real_write(fd, data[: len(rec(1)) + 5])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", one_and_a_half_then_full)
    sink = JsonlFileSink(out)
    for n in (1, 2, 3):
        await sink.write(rec(n))
    with pytest.raises(OutputFailed, match="No space"):
        await sink.flush()
    assert (out.read_bytes(), sink.records_written) == (rec(0) + rec(1), 1)


async def test_a_failed_sink_refuses_more_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(fd: int, data: memoryview) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    sink = JsonlFileSink(tmp_path / "out.jsonl")
    await sink.write(rec(1))
    with pytest.raises(OutputFailed, match="No space"):
        await sink.flush()
    with pytest.raises(OutputFailed, match="No space"):
        await sink.write(rec(2))


async def test_writes_during_a_flush_keep_their_order(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    sink = JsonlFileSink(out, batch_bytes=200)
    async with anyio.create_task_group() as tg:

        async def ticker() -> None:
            for _ in range(50):
                await sink.flush(durable=True)

        tg.start_soon(ticker)
        for n in range(300):
            await sink.write(rec(n))
    await sink.aclose()
    assert out.read_bytes() == b"".join(rec(n) for n in range(300))


async def test_a_killed_sink_loses_only_its_buffer_and_resume_agrees(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    sink = JsonlFileSink(out, batch_bytes=500)
    for n in range(40):
        await sink.write(rec(n))
    # Kill: the sink is dropped without aclose; what reached the OS stays.
    state = await load_resume(out)
    assert len(state) == sink.records_written


def test_the_file_sink_is_a_sink(tmp_path: Path) -> None:
    sink: Sink = JsonlFileSink(tmp_path / "out.jsonl")
    assert "JsonlFileSink" in repr(sink)


def test_public_api_is_explicit() -> None:
    for module in (output, sinks):
        assert all(hasattr(module, name) for name in module.__all__)


async def test_small_batches_skip_the_thread_once_the_file_is_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jsonl"
    sink = JsonlFileSink(out)
    await sink.write(rec(0))
    await sink.flush()  # opens the file: in the writer thread
    hops: list[object] = []
    submit = sink._thread.submit
    monkeypatch.setattr(sink._thread, "submit", lambda *a, **k: hops.append(a) or submit(*a, **k))
    for n in range(1, 4):
        await sink.write(rec(n))
        await sink.flush()
    assert hops == []
    assert out.read_bytes() == b"".join(rec(n) for n in range(4))
    await sink.flush(durable=True)  # fsync still hops
    assert len(hops) == 1
    await sink.aclose()


async def test_one_slow_inline_write_sends_the_rest_to_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sinks, "SLOW_WRITE_S", -1.0)  # every write is "slow"
    out = tmp_path / "out.jsonl"
    sink = JsonlFileSink(out)
    await sink.write(rec(0))
    await sink.flush()
    await sink.write(rec(1))
    await sink.flush()  # inline, found slow
    hops: list[object] = []
    submit = sink._thread.submit
    monkeypatch.setattr(sink._thread, "submit", lambda *a, **k: hops.append(a) or submit(*a, **k))
    await sink.write(rec(2))
    await sink.flush()
    assert len(hops) == 1
    assert out.read_bytes() == rec(0) + rec(1) + rec(2)
    await sink.aclose()
