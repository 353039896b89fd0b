"""Benchmark: peak memory with many large URL sources in flight, with and without the
byte budget (``max_inflight_source_bytes``), side by side.

    .venv/bin/python scripts/bench_source_memory.py [--urls 128] [--mib 32] [--concurrency 64]

A server on 127.0.0.1 (this process, a thread per connection) serves ``--urls``
bodies of ``--mib`` MiB each, slowly (1 MiB, then a short pause), so that many
downloads are in flight at once; they are not images, so each ends as one
UnsupportedFormat record as soon as it has arrived (what is measured is the memory of
sources, not of decoding). The real CLI runs against the emulator twice: with the
default budget (max(max_source_bytes, 8 MiB x concurrency)), and with the budget set
to 1 TiB, which is what every release before the budget did. Peak RSS is the kernel's
(``wait4`` ru_maxrss of the child); "held at most" is the budget's own peak.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson

from scripts._benchlib import CHILD_ENV, ROOT, EmulatorProcess, fmt_table

MIB = 1024 * 1024
BLOCK = os.urandom(MIB)


def _serve(mib: int, pause_s: float) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(mib * MIB))
            self.end_headers()
            try:
                for _ in range(mib):
                    self.wfile.write(BLOCK)
                    time.sleep(pause_s)
            except OSError:
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _run(
    folder: Path, manifest: Path, emulator: str, concurrency: int, budget: int | None
) -> dict[str, Any]:
    out, metrics = folder / f"out-{budget}.jsonl", folder / f"metrics-{budget}.json"
    args = [
        sys.executable,
        "-m",
        "batchrek",
        "run",
        str(manifest),
        "-o",
        str(out),
        "--no-resume",
        "--endpoint-url",
        emulator,
        "--region",
        "us-east-1",
        "--allow-http",
        "--allow-loopback-addresses",
        "--concurrency",
        str(concurrency),
        "--rate",
        "100000",
        "--no-progress",
        "--metrics-out",
        str(metrics),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BATCHREK_"))}
    env.update(CHILD_ENV)
    if budget is not None:
        env["BATCHREK_MAX_INFLIGHT_SOURCE_BYTES"] = str(budget)
    started = time.perf_counter()
    proc = subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    summary = orjson.loads(metrics.read_bytes()) if metrics.exists() else {}
    records = sum(1 for _ in out.open("rb")) if out.exists() else 0
    return {
        "exit": os.waitstatus_to_exitcode(status),
        "records": records,
        "wall_s": wall,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "budget": summary.get("source_budget", {}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--urls", type=int, default=128)
    parser.add_argument("--mib", type=int, default=32, help="size of each body")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--pause-s", type=float, default=0.02, help="between 1 MiB writes")
    args = parser.parse_args()

    server, base = _serve(args.mib, args.pause_s)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifest = folder / "m.txt"
        manifest.write_text("".join(f"{base}/body-{i}.jpg\n" for i in range(args.urls)))
        with EmulatorProcess(log=folder / "emulator.log") as emulator:
            rows = []
            for label, budget in [("budget (default)", None), ("no budget (1 TiB)", 1 << 40)]:
                result = _run(folder, manifest, emulator.url, args.concurrency, budget)
                held = result["budget"]
                rows.append(
                    [
                        label,
                        f"{held.get('bytes', 0) / MIB:,.0f} MiB",
                        f"{held.get('peak_bytes', 0) / MIB:,.0f} MiB",
                        held.get("waits", 0),
                        f"{result['peak_rss_mib']:,.0f} MiB",
                        f"{result['wall_s']:.1f} s",
                        f"{result['records']}/{args.urls}",
                        result["exit"],
                    ]
                )
    server.shutdown()
    print(
        f"{args.urls} URLs of {args.mib} MiB, concurrency {args.concurrency} "
        f"({args.concurrency + max(4, args.concurrency // 4)} workers)"
    )
    print(
        fmt_table(
            ["run", "budget", "held at most", "waits", "peak RSS", "wall", "records", "exit"],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
