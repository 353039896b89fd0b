"""A small fault-injecting HTTP proxy on 127.0.0.1 in front of moto's S3 server.

Every request is forwarded as it is, except the ones a rule says to refuse: those get
S3's own ``503 SlowDown`` answer (or another status and code) instead, the way a
throttled or failing bucket answers. ``serve(path, body)`` makes it a plain web
server for that path too (an image URL source behind the same faults). Runs in a
thread with its own event loop, so a test can start it around a child ``batchrek``
process and count what it refused.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

__all__ = ["FaultProxy", "fault_proxy", "request_kind"]

_HOP_BY_HOP = {"host", "connection", "transfer-encoding", "content-length", "expect", "keep-alive"}


def request_kind(method: str, path: str, query: str) -> str:
    """What S3 call a request is: put_object, upload_part, create_upload, complete,
    get_object, head_object, or other (listings, bucket calls)."""
    key = path.lstrip("/").partition("/")[2]
    if method == "PUT" and key:
        return "upload_part" if "partNumber=" in query else "put_object"
    if method == "POST" and key:
        return "complete" if "uploadId=" in query else "create_upload"
    if method == "GET" and key:
        return "get_object"
    if method == "HEAD" and key:
        return "head_object"
    return "other"


WRITES = frozenset({"put_object", "upload_part", "create_upload", "complete"})


@dataclass
class _Rule:
    kinds: frozenset[str]
    times: int | None  # None: for ever
    status: int
    code: str


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.url = ""
        self.refused: Counter[str] = Counter()
        self.seen: Counter[str] = Counter()
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self.session: aiohttp.ClientSession | None = None
        self._static: dict[str, bytes] = {}

    def fail(
        self,
        kinds: frozenset[str] | set[str],
        *,
        times: int | None,
        status: int = 503,
        code: str = "SlowDown",
    ) -> None:
        """Refuse the next ``times`` requests of these kinds (``None``: all of them)."""
        with self._lock:
            self._rules.append(_Rule(frozenset(kinds), times, status, code))

    def serve(self, path: str, body: bytes) -> str:
        """Answer GET ``path`` with ``body`` itself; returns the URL."""
        self._static[path] = body
        return self.url + path

    def heal(self) -> None:
        with self._lock:
            self._rules.clear()

    def _verdict(self, kind: str) -> _Rule | None:
        with self._lock:
            self.seen[kind] += 1
            for rule in self._rules:
                if kind in rule.kinds and (rule.times is None or rule.times > 0):
                    if rule.times is not None:
                        rule.times -= 1
                    self.refused[kind] += 1
                    return rule
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        kind = request_kind(request.method, request.path, request.query_string)
        body = await request.read()
        rule = self._verdict(kind)
        if rule is not None:
            xml = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{rule.code}</Code><Message>injected by the test proxy"
                f"</Message><RequestId>proxy</RequestId></Error>"
            )
            return web.Response(status=rule.status, text=xml, content_type="application/xml")
        if request.method == "GET" and request.path in self._static:
            return web.Response(body=self._static[request.path], content_type="image/jpeg")
        session = self.session
        assert session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body if body else None,
            allow_redirects=False,
            auto_decompress=False,
        ) as upstream:
            payload = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
            return web.Response(status=upstream.status, body=payload, headers=out)

    def __repr__(self) -> str:
        return f"FaultProxy({self.url} -> {self.upstream}, refused={dict(self.refused)})"


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    """Serve a ``FaultProxy`` on 127.0.0.1 (a free port) until the block exits."""
    proxy = FaultProxy(upstream)
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def serve() -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        proxy.session = aiohttp.ClientSession()
        app.router.add_route("*", "/{tail:.*}", proxy.handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        proxy.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        stop = asyncio.Event()
        state["stop"] = (asyncio.get_running_loop(), stop)
        ready.set()
        try:
            await stop.wait()
        finally:
            await proxy.session.close()
            await runner.cleanup()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the proxy did not start")
    try:
        yield proxy
    finally:
        loop, stop = state["stop"]
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
