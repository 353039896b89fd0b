"""Only regular files are read, decided without blocking; every read is bounded."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from batchrek.blocking import DaemonExecutor
from batchrek.errors import ItemError
from batchrek.models import LocalPath
from batchrek.prepare import ByteBudget, Fetcher
from batchrek.prepare.localread import read_fd

pytestmark = pytest.mark.anyio


def _fetcher(max_bytes: int = 1 << 20, budget: ByteBudget | None = None) -> Fetcher:
    return Fetcher(
        s3_for_region=None,
        http=None,
        max_bytes=max_bytes,
        allow_http=False,
        http_timeout_s=5,
        budget=budget,
    )


async def _code(path: str, max_bytes: int = 1 << 20) -> str:
    fetcher = _fetcher(max_bytes)
    try:
        with anyio.fail_after(30):  # a bound, not a timing: a blocked read would hang
            await fetcher.local(LocalPath(path))
    except ItemError as exc:
        return exc.code
    finally:
        fetcher.close()
    return "read"


async def test_a_fifo_nobody_writes_to_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    assert await _code(str(fifo)) == "SpecialFile"


async def test_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.jpg"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    try:
        assert await _code(str(path)) == "SpecialFile"
    finally:
        server.close()


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
async def test_a_device_is_refused(device: str) -> None:
    assert await _code(device) == "SpecialFile"


@pytest.mark.parametrize("path", ["/proc/self/status", "/proc/self/maps"])
async def test_a_proc_file_is_refused(path: str) -> None:
    assert await _code(path) == "SpecialFile"


async def test_a_symlink_loop_has_its_own_code(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert await _code(str(tmp_path / "a")) == "SymlinkLoop"


async def test_a_nul_byte_in_the_path_is_an_invalid_path(tmp_path: Path) -> None:
    assert await _code(f"{tmp_path}/x\x00.jpg") == "InvalidPath"


async def test_an_overlong_path_is_an_invalid_path(tmp_path: Path) -> None:
    assert await _code(str(tmp_path / ("x" * 300))) == "InvalidPath"


async def test_a_directory_is_not_an_image(tmp_path: Path) -> None:
    assert await _code(str(tmp_path)) == "SourceNotFound"


async def test_a_file_over_the_cap_is_refused_from_its_size(tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    big.write_bytes(b"x" * 2000)
    assert await _code(str(big), max_bytes=1000) == "ImageTooLarge"


def test_a_file_longer_than_its_stat_said_is_not_read_past_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "grew.jpg"
    path.write_bytes(b"y" * 5000)
    fd = os.open(path, os.O_RDONLY)
    with pytest.raises(ItemError) as caught:
        read_fd(fd, 100, str(path))  # stat said 100 bytes
    assert (caught.value.code, caught.value.retryable) == ("SourceChanged", True)


async def test_a_read_holds_its_size_in_the_budget_until_released(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(b"z" * 3000)
    budget = ByteBudget(10_000)
    fetcher = _fetcher(budget=budget)
    try:
        lease = fetcher.lease()
        assert lease is not None
        data = await fetcher.local(LocalPath(str(path)), lease)
        held = budget.used
        lease.release()
    finally:
        fetcher.close()
    assert (len(data), held, budget.used) == (3000, 3000, 0)


async def test_reads_wait_for_room_in_the_budget(tmp_path: Path) -> None:
    paths = []
    for i in range(12):
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(bytes([i]) * 400)
        paths.append(path)
    budget = ByteBudget(1000)  # two files at a time
    fetcher = _fetcher(budget=budget)
    got: list[bytes] = []
    try:

        async def one(path: Path) -> None:
            lease = fetcher.lease()
            assert lease is not None
            got.append(await fetcher.local(LocalPath(str(path)), lease))
            await anyio.lowlevel.checkpoint()
            lease.release()

        async with anyio.create_task_group() as tg:
            for path in paths:
                tg.start_soon(one, path)
    finally:
        fetcher.close()
    assert (len(got), budget.peak <= 1000, budget.used) == (12, True, 0)


def test_shutting_down_the_readers_never_waits_for_a_stuck_read() -> None:
    executor = DaemonExecutor(1, name="test-stuck")
    stuck = os.pipe()  # nobody ever writes: the read blocks in the kernel
    executor.submit(os.read, stuck[0], 1)
    executor.shutdown()  # returns at once; the daemon thread dies with the process
    os.close(stuck[1])  # now the read ends (EOF) and the thread goes
