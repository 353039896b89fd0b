"""How many requests a second the emulator serves on one core.

The emulator runs in its own process (pinned to one CPU when the machine has more
than one); this process drives it with raw keep-alive HTTP/1.1 over asyncio streams
and a precomputed, signed-looking request, so the client costs as little as
possible. Every phase is bounded in requests and in seconds.

    .venv/bin/python scripts/bench_emulator.py [--requests 20000] [--seconds 8]

Prints requests/s with no latency (an image already seen), and at 50 ms latency with
256 requests in flight, plus each side's CPU share during each phase and the
emulator's CPU time per request (whose inverse is what one free core can serve, a
number that stays meaningful when other processes compete for the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batchrek.emulator import Emulator, EmulatorControl, EmulatorSettings
from batchrek.testing import corpus

AUTH = "AWS4-HMAC-SHA256 Credential=bench/20250101/us-east-1/rekognition/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0"  # noqa: E501


def _serve(queue: Queue[str], cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")

    async def main() -> None:
        async with Emulator(EmulatorSettings(port=0)) as emu:
            queue.put(emu.endpoint_url)
            await asyncio.Event().wait()

    asyncio.run(main())


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _request(host: str, port: int, body: bytes) -> bytes:
    head = (
        f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/x-amz-json-1.1\r\n"
        "X-Amz-Target: RekognitionService.DetectLabels\r\n"
        f"Authorization: {AUTH}\r\nX-Amz-Date: 20250101T000000Z\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class Tally:
    sent: int = 0
    ok: int = 0
    other: int = 0


async def _connection(
    host: str, port: int, request: bytes, tally: Tally, limit: int, deadline: float
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while tally.sent < limit and time.monotonic() < deadline:
            tally.sent += 1
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if head.startswith(b"HTTP/1.1 200"):
                tally.ok += 1
            else:
                tally.other += 1
    finally:
        writer.close()


async def _phase(
    url: str, request: bytes, in_flight: int, limit: int, seconds: float
) -> tuple[Tally, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    tally = Tally()
    started = time.perf_counter()
    deadline = time.monotonic() + seconds
    await asyncio.gather(
        *(_connection(host, port, request, tally, limit, deadline) for _ in range(in_flight))
    )
    return tally, time.perf_counter() - started


def _run(
    url: str, pid: int, name: str, request: bytes, in_flight: int, limit: int, seconds: float
) -> dict[str, Any]:
    cpu_before, client_before = _cpu_seconds(pid), time.process_time()
    tally, elapsed = asyncio.run(_phase(url, request, in_flight, limit, seconds))
    cpu = _cpu_seconds(pid) - cpu_before
    client_cpu = time.process_time() - client_before
    result = {
        "phase": name,
        "in_flight": in_flight,
        "requests": tally.sent,
        "ok": tally.ok,
        "errors": tally.other,
        "seconds": round(elapsed, 3),
        "req_per_s": round(tally.sent / elapsed, 1),
        "emulator_cpu_share": round(cpu / elapsed, 2),
        "client_cpu_share": round(client_cpu / elapsed, 2),
        # CPU the emulator spent per request: 1e6 / this = req/s one full core could serve.
        "emulator_cpu_us_per_req": round(cpu / max(1, tally.sent) * 1e6, 1),
    }
    print(json.dumps(result), flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="cap per phase")
    parser.add_argument("--seconds", type=float, default=8.0, help="cap per phase")
    args = parser.parse_args()

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpu = cpus[0] if len(cpus) > 1 else None
    if server_cpu is not None:
        os.sched_setaffinity(0, set(cpus[1:]))
    ctx = multiprocessing.get_context("spawn")
    queue: Queue[str] = ctx.Queue()
    server = ctx.Process(target=_serve, args=(queue, server_cpu), daemon=True)
    server.start()
    try:
        url = queue.get(timeout=30)
        assert server.pid is not None
        control = EmulatorControl(url)
        photo = corpus.photo(320, 240)
        body = json.dumps({"Image": {"Bytes": base64.b64encode(photo).decode()}}).encode()
        parts = urlsplit(url)
        request = _request(parts.hostname or "", parts.port or 80, body)
        print(f"emulator {url}, pinned to cpu {server_cpu}; image {len(photo)} bytes", flush=True)

        _run(url, server.pid, "warm-up", request, 8, 200, 10)
        _run(url, server.pid, "no latency", request, 64, args.requests, args.seconds)
        control.configure(latency_ms=50)
        _run(url, server.pid, "50 ms latency", request, 256, args.requests, args.seconds)
        print(f"(ideal at 50 ms with 256 in flight: {256 / 0.05:.0f} req/s)")
        stats = control.stats()
        total, peak = stats["total_requests"], stats["max_in_flight"]
        print(f"emulator counted {total} requests; max in flight {peak}")
    finally:
        server.terminate()
        server.join(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
