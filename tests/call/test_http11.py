"""call.http11 against a scripted server on 127.0.0.1: framing, reuse, failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import botocore.exceptions as bex
import pytest

from batchrek.call.http11 import Http11Pool
from batchrek.call.retry import classify

pytestmark = pytest.mark.anyio

REQUEST = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
Reply = Callable[[int], list[bytes]]  # request number -> the chunks to write (b"" = close)


class Server:
    """Answers each request on a connection with ``reply(n)``; counts connections."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.connections = 0
        self.requests = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                self.requests += 1
                for chunk in self.reply(self.requests):
                    if chunk == b"":
                        writer.close()
                        return
                    if chunk == b"<sleep>":
                        await asyncio.sleep(5)
                        continue
                    writer.write(chunk)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Reply], Any]]:
    servers: list[asyncio.Server] = []

    async def start(reply: Reply) -> Server:
        srv = Server(reply)
        server = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
        servers.append(server)
        srv.port = server.sockets[0].getsockname()[1]
        return srv

    yield start
    for server in servers:
        server.close()


def _pool(port: int, **kw: Any) -> Http11Pool:
    options: dict[str, Any] = {"limit": 4, "connect_timeout": 5.0, "read_timeout": 5.0} | kw
    return Http11Pool(
        endpoint_url=f"http://127.0.0.1:{port}/", host="127.0.0.1", port=port, **options
    )


def _ok(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nX-Amzn-RequestId: r1\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n"
        + extra
        + b"\r\n"
        + body
    )


async def test_content_length_answer_and_connection_reuse(serve: Any) -> None:
    server = await serve(lambda n: [_ok(b'{"n": %d}' % n)])
    pool = _pool(server.port)
    for n in (1, 2, 3):
        status, headers, body = await pool.post(REQUEST)
        assert (status, body) == (200, b'{"n": %d}' % n)
        assert headers["x-amzn-requestid"] == "r1"  # names lower-cased
    assert server.connections == 1
    await pool.aclose()


async def test_answer_split_across_reads(serve: Any) -> None:
    whole = _ok(b'{"Labels": []}')
    server = await serve(lambda n: [whole[:7], whole[7:40], whole[40:]])
    pool = _pool(server.port)
    assert await pool.post(REQUEST) == (
        200,
        {"x-amzn-requestid": "r1", "content-length": "14"},
        b'{"Labels": []}',
    )
    await pool.aclose()


async def test_chunked_answer(serve: Any) -> None:
    chunked = (
        b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5;ext=1\r\n{"a":\r\n4\r\n 1}\n\r\n0\r\nTrailer: x\r\n\r\n'
    )
    server = await serve(lambda n: [chunked[:30], chunked[30:]])
    pool = _pool(server.port)
    status, _headers, body = await pool.post(REQUEST)
    assert (status, body) == (400, b'{"a": 1}\n')
    await pool.aclose()


async def test_connection_close_is_not_reused(serve: Any) -> None:
    server = await serve(lambda n: [_ok(b"{}", b"Connection: close\r\n"), b""])
    pool = _pool(server.port)
    await pool.post(REQUEST)
    await pool.post(REQUEST)
    assert server.connections == 2
    await pool.aclose()


async def test_body_until_close_without_length(serve: Any) -> None:
    server = await serve(lambda n: [b'HTTP/1.1 200 OK\r\n\r\n{"x": 1}', b""])
    pool = _pool(server.port)
    assert (await pool.post(REQUEST))[2] == b'{"x": 1}'
    await pool.aclose()


async def test_server_closing_mid_answer_is_a_connection_error(serve: Any) -> None:
    server = await serve(lambda n: [_ok(b"0123456789")[:-4], b""])
    pool = _pool(server.port)
    with pytest.raises(bex.ConnectionClosedError) as caught:
        await pool.post(REQUEST)
    assert "127.0.0.1" in str(caught.value)
    assert classify(caught.value).code == "ConnectionError"
    assert classify(caught.value).retryable


async def test_garbage_status_line_is_a_connection_error(serve: Any) -> None:
    server = await serve(lambda n: [b"SMTP ready\r\n\r\n"])
    pool = _pool(server.port)
    with pytest.raises(bex.ConnectionClosedError):
        await pool.post(REQUEST)


async def test_read_timeout_is_botocores(serve: Any) -> None:
    server = await serve(lambda n: [b"<sleep>"])
    pool = _pool(server.port, read_timeout=0.2)
    with pytest.raises(bex.ReadTimeoutError) as caught:
        await pool.post(REQUEST)
    assert classify(caught.value).code == "Timeout"
    await pool.aclose()


async def test_a_stale_idle_connection_is_not_used(serve: Any) -> None:
    server = await serve(lambda n: [_ok(b"{}"), b""] if n == 1 else [_ok(b"{}")])
    pool = _pool(server.port)
    await pool.post(REQUEST)
    await asyncio.sleep(0.05)  # the server's close reaches the idle connection
    assert (await pool.post(REQUEST))[0] == 200
    assert server.connections == 2
    await pool.aclose()


async def test_at_most_limit_connections(serve: Any) -> None:
    server = await serve(lambda n: [_ok(b"{}")])
    pool = _pool(server.port, limit=2)
    await asyncio.gather(*(pool.post(REQUEST) for _ in range(10)))
    assert server.connections <= 2
    assert server.requests == 10
    await pool.aclose()


async def test_cancelled_call_closes_its_connection(serve: Any) -> None:
    server = await serve(lambda n: [b"<sleep>"] if n == 1 else [_ok(b"{}")])
    pool = _pool(server.port)
    task = asyncio.ensure_future(pool.post(REQUEST))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await pool.post(REQUEST))[0] == 200
    assert server.connections == 2
    await pool.aclose()
