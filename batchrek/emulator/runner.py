"""Start and stop the emulator: in the current event loop, or in a thread of its own.

``run_in_thread`` is what synchronous tests and scripts use: the server gets its own
thread and loop, so a blocking boto3 client in the caller's thread cannot stall it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from batchrek.emulator.client import EmulatorControl
from batchrek.emulator.s3access import S3Access
from batchrek.emulator.server import build_app
from batchrek.emulator.service import Service
from batchrek.emulator.settings import EmulatorSettings

__all__ = ["Emulator", "EmulatorHandle", "run_in_thread"]


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Emulator:
    """``async with Emulator(settings) as emu:`` serves on ``emu.endpoint_url``."""

    def __init__(self, settings: EmulatorSettings | None = None) -> None:
        self.settings = settings or EmulatorSettings()
        self._stack = contextlib.AsyncExitStack()
        self._service: Service | None = None
        self.endpoint_url = ""

    @property
    def service(self) -> Service:
        if self._service is None:
            raise RuntimeError("the emulator is not running")
        return self._service

    async def __aenter__(self) -> Emulator:
        s = self.settings
        try:
            s3 = await self._stack.enter_async_context(S3Access(s.region, s.s3_endpoint_url))
            self._service = Service(s, s3)
            runner = web.AppRunner(build_app(self._service), access_log=None, handle_signals=False)
            await runner.setup()
            self._stack.push_async_callback(runner.cleanup)
            sock = _listen(s.host, s.port)
            await web.SockSite(runner, sock, backlog=1024).start()
            self.endpoint_url = _url(s.host, sock.getsockname()[1])
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()
        self._service = None

    def stats(self) -> dict[str, Any]:
        return self.service.stats.snapshot()

    def reset(self, *, settings: bool = False) -> None:
        self.service.reset(restore_settings=settings)

    def configure(self, **changes: Any) -> EmulatorSettings:
        return self.service.configure(changes)

    def __repr__(self) -> str:
        return f"Emulator({self.endpoint_url or 'stopped'})"


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class EmulatorHandle(EmulatorControl):
    """A running threaded emulator: its URL, start-up settings and control methods."""

    def __init__(self, endpoint_url: str, settings: EmulatorSettings) -> None:
        super().__init__(endpoint_url)
        self.initial_settings = settings


@contextlib.contextmanager
def run_in_thread(
    settings: EmulatorSettings | None = None, *, start_timeout: float = 30.0
) -> Iterator[EmulatorHandle]:
    """Serve in a daemon thread with its own event loop until the block exits."""
    settings = settings or EmulatorSettings()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        state["stop"] = (asyncio.get_running_loop(), stop)
        try:
            async with Emulator(settings) as emu:
                state["url"] = emu.endpoint_url
                ready.set()
                await stop.wait()
        except BaseException as exc:
            state["error"] = exc
            raise
        finally:
            ready.set()

    def main() -> None:
        # A start-up failure is re-raised in the caller's thread from ``state``.
        with contextlib.suppress(Exception):
            asyncio.run(serve())

    thread = threading.Thread(target=main, name="batchrek-emulator", daemon=True)
    thread.start()
    if not ready.wait(start_timeout) or "url" not in state:
        raise RuntimeError("emulator did not start") from state.get("error")
    try:
        yield EmulatorHandle(state["url"], settings)
    finally:
        loop, stop = state["stop"]
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
