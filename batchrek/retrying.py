"""The retry seam for I/O beside the service calls: what the S3 sink, the spool
recovery, the output probe and source downloads call their requests through. The
run gives ``call.TransientRetry`` (back-off on SlowDown, 5xx and connection errors,
behind the endpoint's circuit breaker); ``once`` is the default: no retry. It lives
in the shared vocabulary so prepare and output, independent siblings, share one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

__all__ = ["Retrier", "once"]

T = TypeVar("T")


class Retrier(Protocol):
    """Retries one endpoint's transient failures (``call.TransientRetry`` is one)."""

    async def __call__(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        endpoint: str,
        name: str | None = None,
        fatal: bool = True,
    ) -> T: ...


async def once(
    fn: Callable[[], Awaitable[T]],
    *,
    endpoint: str,
    name: str | None = None,
    fatal: bool = True,
) -> T:
    """No retry: the default Retrier (unit tests, scripts)."""
    return await fn()
