"""Local reads: batched into few thread hops, each caller gets its own bytes or error."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from batchrek.errors import ItemError
from batchrek.models import LocalPath
from batchrek.prepare import Fetcher

pytestmark = pytest.mark.anyio


def _fetcher(max_bytes: int = 1 << 20) -> Fetcher:
    return Fetcher(
        s3_for_region=None, http=None, max_bytes=max_bytes, allow_http=False, http_timeout_s=5
    )


async def test_many_reads_share_few_hops_and_each_gets_its_file(tmp_path: Path) -> None:
    files = {tmp_path / f"f{i}.bin": bytes([i % 256]) * (100 + i) for i in range(200)}
    for path, data in files.items():
        path.write_bytes(data)
    fetcher = _fetcher()
    got: dict[Path, bytes] = {}
    try:

        async def one(path: Path) -> None:
            got[path] = await fetcher.local(LocalPath(str(path)))

        async with anyio.create_task_group() as tg:
            for path in files:
                tg.start_soon(one, path)
        reader = fetcher._reader
        assert got == files
        assert reader.reads == 200
        assert reader.hops_done < 200 / 4  # started in one turn of the loop: batched
    finally:
        fetcher.close()


async def test_errors_reach_only_their_own_caller(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    good.write_bytes(b"x" * 10)
    big = tmp_path / "big.jpg"
    big.write_bytes(b"x" * 2000)
    fetcher = _fetcher(max_bytes=1000)
    results: dict[str, object] = {}
    try:

        async def one(name: str, path: Path) -> None:
            try:
                results[name] = await fetcher.local(LocalPath(str(path)))
            except ItemError as exc:
                results[name] = exc.code

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "good", good)
            tg.start_soon(one, "missing", tmp_path / "nope.jpg")
            tg.start_soon(one, "dir", tmp_path)
            tg.start_soon(one, "big", big)
        assert results == {
            "good": b"x" * 10,
            "missing": "SourceNotFound",
            "dir": "SourceNotFound",
            "big": "ImageTooLarge",
        }
    finally:
        fetcher.close()


async def test_a_cancelled_caller_does_not_disturb_the_batch(tmp_path: Path) -> None:
    paths = [tmp_path / f"f{i}" for i in range(20)]
    for i, path in enumerate(paths):
        path.write_bytes(str(i).encode())
    fetcher = _fetcher()
    got: dict[int, bytes] = {}
    try:
        async with anyio.create_task_group() as tg:

            async def one(i: int) -> None:
                got[i] = await fetcher.local(LocalPath(str(paths[i])))

            with anyio.CancelScope() as doomed:
                doomed.cancel()
                await fetcher.local(LocalPath(str(paths[0])))  # cancelled at its await
            for i in range(1, 20):
                tg.start_soon(one, i)
        assert got == {i: str(i).encode() for i in range(1, 20)}
    finally:
        fetcher.close()
