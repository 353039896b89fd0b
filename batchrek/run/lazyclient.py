"""An AWS client made on its first call, for the clients a run may never use.

Creating an aiobotocore S3 client loads S3's service model (the largest botocore
ships) and costs ~0.1-0.2 s of CPU; a run over local files with a local output never
calls S3. ``LazyClient`` stands in for the client: each method is an async function
that creates the real client (once, under a lock) and calls it; ``get_paginator``
returns a paginator whose ``paginate`` does the same before its first page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio

__all__ = ["LazyClient"]


class LazyClient:
    """``await lazy.head_bucket(...)`` creates the client with ``make()``, then calls it."""

    def __init__(self, make: Callable[[], Awaitable[Any]], *, name: str = "client") -> None:
        self._make = make
        self._name = name
        self._client: Any = None
        self._lock = anyio.Lock()

    @property
    def created(self) -> bool:
        return self._client is not None

    async def client(self) -> Any:
        """The real client, made on the first call."""
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await self._make()
        return self._client

    def get_paginator(self, operation: str) -> _LazyPaginator:
        return _LazyPaginator(self, operation)

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_"):
            raise AttributeError(name)

        async def method(*args: Any, **kwargs: Any) -> Any:
            client = await self.client()
            return await getattr(client, name)(*args, **kwargs)

        method.__name__ = name
        return method

    def __repr__(self) -> str:
        return f"LazyClient({self._name}, created={self.created})"


class _LazyPaginator:
    def __init__(self, lazy: LazyClient, operation: str) -> None:
        self._lazy = lazy
        self._operation = operation

    async def paginate(self, **kwargs: Any) -> AsyncIterator[Any]:
        client = await self._lazy.client()
        async for page in client.get_paginator(self._operation).paginate(**kwargs):
            yield page
