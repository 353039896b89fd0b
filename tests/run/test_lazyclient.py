"""LazyClient: the real client is made on the first call, once, and only then."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from batchrek.run.lazyclient import LazyClient

pytestmark = pytest.mark.anyio


class _Paginator:
    async def paginate(self, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        for n in range(2):
            yield {"page": n, **kwargs}


class _Client:
    async def head_bucket(self, **kwargs: Any) -> dict[str, Any]:
        await anyio.lowlevel.checkpoint()
        return {"called": kwargs}

    def get_paginator(self, operation: str) -> _Paginator:
        assert operation == "list_objects_v2"
        return _Paginator()


async def test_made_once_on_first_call() -> None:
    made: list[_Client] = []

    async def make() -> _Client:
        await anyio.sleep(0.01)
        made.append(_Client())
        return made[-1]

    lazy = LazyClient(make, name="s3")
    assert not lazy.created
    results: list[Any] = []
    async with anyio.create_task_group() as tg:
        for n in range(5):
            tg.start_soon(lambda n=n: _call(lazy, n, results))
    assert len(made) == 1
    assert sorted(r["called"]["Bucket"] for r in results) == [f"b{n}" for n in range(5)]
    assert "created=True" in repr(lazy)


async def _call(lazy: Any, n: int, out: list[Any]) -> None:
    out.append(await lazy.head_bucket(Bucket=f"b{n}"))


async def test_paginator_makes_the_client_before_the_first_page() -> None:
    async def make() -> _Client:
        return _Client()

    lazy: Any = LazyClient(make)
    paginator = lazy.get_paginator("list_objects_v2")
    assert not lazy.created
    pages = [p async for p in paginator.paginate(Bucket="b")]
    assert pages == [{"page": 0, "Bucket": "b"}, {"page": 1, "Bucket": "b"}]


async def test_never_used_never_made() -> None:
    async def make() -> _Client:
        raise AssertionError("must not be made")

    lazy = LazyClient(make)
    with pytest.raises(AttributeError):
        lazy._private  # noqa: B018
    assert not lazy.created
