"""A keep-alive HTTP/1.1 client for one origin: POST a request, get the whole answer.

The lean path sends one kind of request to one host, with every header already
built and signed, and reads small JSON answers. aiohttp's ``ClientSession.request``
spends ~150 us of CPU per request on what such a stream does not need (a
``ClientRequest`` and ``ClientResponse`` object each, a ``CIMultiDict`` per header
set, URL parsing, cookie jar and trace hooks, the payload registry). Here a request is
one ``transport.write`` of bytes built by the caller, and the answer is parsed in
``data_received``: status line, headers, then a ``Content-Length`` or chunked body.

    Http11Pool.post(head, body) ─▶ an idle connection (LIFO) or a new one (≤ limit)
        ─▶ write ─▶ _Connection.data_received parses ─▶ (status, headers, body)

Failures are raised as the botocore exceptions aiobotocore raises for the same
failures (``EndpointConnectionError``, ``ConnectTimeoutError``, ``ReadTimeoutError``,
``ConnectionClosedError``, ``SSLError``), so ``retry.classify`` treats them alike.
A connection is reused only after a complete answer that did not say
``Connection: close``; anything else (a cancelled call, a timeout, a parse error)
closes it. The read timeout bounds the wait for the whole answer after the request
is written (botocore's bounds each socket read; for answers of a few KB it is the
same bound). Proxies are not handled here: the lean path uses aiohttp when the
endpoint has one.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any

import botocore.exceptions as bex

__all__ = ["Answer", "Http11Pool"]

Answer = tuple[int, dict[str, str], bytes]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024


class _BadResponse(Exception):
    """The server's bytes are not an HTTP/1.1 response we can read."""


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; at most one request on it at a time."""

    __slots__ = (
        "_body_start",
        "_buf",
        "_chunked",
        "_headers",
        "_length",
        "_status",
        "_waiter",
        "alive",
        "keep_alive",
        "transport",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.alive = True
        self.keep_alive = True
        self._waiter: asyncio.Future[Answer] | None = None
        self._buf = bytearray()
        self._reset()

    def _reset(self) -> None:
        self._buf.clear()
        self._status = 0
        self._headers: dict[str, str] | None = None
        self._body_start = 0
        self._length: int | None = None
        self._chunked = False

    # -- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            # Bytes nobody asked for: the connection's state is unknown.
            self.close()
            return
        self._buf += data
        try:
            answer = self._parse()
        except _BadResponse as exc:
            self._fail(bex.ConnectionClosedError(endpoint_url="", error=exc))
            return
        if answer is not None:
            self._waiter = None
            self._reset()
            waiter.set_result(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._headers is not None and self._length is None and not self._chunked:
            # A body delimited by the end of the connection.
            self._waiter = None
            waiter.set_result((self._status, self._headers, bytes(self._buf[self._body_start :])))
            return
        self._waiter = None
        error = exc or ConnectionResetError("the server closed the connection")
        waiter.set_exception(bex.ConnectionClosedError(endpoint_url="", error=error))

    # -- requests -----------------------------------------------------------------

    def send(self, data: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None
        assert self._waiter is None
        waiter: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self.transport.write(data)
        return waiter

    def _fail(self, error: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close()

    def close(self) -> None:
        self.alive = False
        if self.transport is not None:
            self.transport.close()

    # -- parsing ------------------------------------------------------------------

    def _parse(self) -> Answer | None:
        buf = self._buf
        if self._headers is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    raise _BadResponse("response head too large")
                return None
            self._read_head(bytes(buf[:end]))
            self._body_start = end + 4
            if 100 <= self._status < 200:  # an interim answer: skip it
                del buf[: self._body_start]
                self._headers = None
                return self._parse()
        start = self._body_start
        if self._chunked:
            body = _dechunk(buf, start)
            if body is None:
                return None
        elif self._length is not None:
            if len(buf) - start < self._length:
                return None
            body = bytes(buf[start : start + self._length])
        else:
            if len(buf) - start > _MAX_BODY:
                raise _BadResponse("response body too large")
            return None  # until the server closes the connection
        assert self._headers is not None
        return self._status, self._headers, body

    def _read_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise _BadResponse(f"bad status line {lines[0][:80]!r}")
        self._status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise _BadResponse(f"bad header line {line[:80]!r}")
            key = name.strip().lower().decode("latin-1")
            text = value.strip().decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        self._headers = headers
        if parts[0] == b"HTTP/1.0" or "close" in headers.get("connection", "").lower():
            self.keep_alive = False
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked = True
        elif "content-length" in headers:
            try:
                self._length = int(headers["content-length"])
            except ValueError:
                raise _BadResponse("bad Content-Length") from None
            if not 0 <= self._length <= _MAX_BODY:
                raise _BadResponse("Content-Length out of range")
        elif self._status in (204, 304):
            self._length = 0


def _dechunk(buf: bytearray, start: int) -> bytes | None:
    """The body of a complete chunked message in ``buf[start:]``; None if incomplete."""
    out = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _BadResponse(f"bad chunk size {size_text[:20]!r}") from None
        pos = eol + 2
        if size == 0:
            # Trailers (ignored) end with an empty line.
            end = buf.find(b"\r\n\r\n", eol)
            if end < 0:
                return None
            return bytes(out)
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos : pos + size]
        if len(out) > _MAX_BODY:
            raise _BadResponse("response body too large")
        pos += size + 2


class Http11Pool:
    """Keep-alive connections to one ``host:port``, at most ``limit`` open at once."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        host: str,
        port: int,
        limit: int,
        connect_timeout: float | None,
        read_timeout: float | None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.endpoint_url = endpoint_url
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._server_hostname = server_hostname if ssl_context is not None else None
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._idle: deque[_Connection] = deque()
        self.limit = limit
        self._busy = 0  # requests on a connection now, at most ``limit``
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._open: set[_Connection] = set()
        self._closed = False

    async def post(self, data: bytes) -> Answer:
        """Send ``data`` (the request line, headers and body) and read the answer."""
        if self._closed:
            raise RuntimeError("the pool is closed")
        await self._take_slot()
        try:
            conn = self._idle_connection() or await self._connect()
            timer = None
            try:
                waiter = conn.send(data)
                if self._read_timeout is not None:
                    timer = asyncio.get_running_loop().call_later(
                        self._read_timeout, _time_out, waiter, self.endpoint_url
                    )
                answer = await waiter
            except BaseException as exc:
                conn.close()
                self._open.discard(conn)
                if isinstance(exc, bex.ConnectionClosedError) and not exc.kwargs.get(
                    "endpoint_url"
                ):
                    raise bex.ConnectionClosedError(
                        endpoint_url=self.endpoint_url, error=exc.kwargs.get("error")
                    ) from exc
                raise
            finally:
                if timer is not None:
                    timer.cancel()
            if conn.alive and conn.keep_alive:
                self._idle.append(conn)
            else:
                conn.close()
                self._open.discard(conn)
            return answer
        finally:
            self._release_slot()

    def _release_slot(self) -> None:
        self._busy -= 1
        while self._waiters and self._busy < self.limit:
            queued = self._waiters.popleft()
            if not queued.done():
                self._busy += 1
                queued.set_result(None)

    async def _take_slot(self) -> None:
        if self._busy < self.limit and not self._waiters:
            self._busy += 1  # the usual case: no await, no future
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release_slot()  # handed a slot as we were cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def _idle_connection(self) -> _Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()  # the most recently used: least likely to be timed out
            if conn.alive:
                return conn
            self._open.discard(conn)
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _transport, conn = await loop.create_connection(
                    _Connection,
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._server_hostname,
                )
        except TimeoutError as exc:
            raise bex.ConnectTimeoutError(endpoint_url=self.endpoint_url, error=exc) from exc
        except ssl.SSLError as exc:
            raise bex.SSLError(endpoint_url=self.endpoint_url, error=exc) from exc
        except OSError as exc:  # refused, unreachable, name not resolved
            raise bex.EndpointConnectionError(endpoint_url=self.endpoint_url, error=exc) from exc
        self._open.add(conn)
        return conn

    async def aclose(self) -> None:
        self._closed = True
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports run their close callbacks

    def __repr__(self) -> str:
        return (
            f"Http11Pool({self.endpoint_url!r}, open={len(self._open)}, "
            f"idle={len(self._idle)}, limit={self.limit})"
        )


def _time_out(waiter: asyncio.Future[Any], endpoint_url: str) -> None:
    if not waiter.done():
        waiter.set_exception(
            bex.ReadTimeoutError(
                endpoint_url=endpoint_url, error=TimeoutError("no complete answer in time")
            )
        )
