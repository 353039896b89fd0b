"""Manifest reading speed and memory: lines/s and peak RSS for 1M-line manifests.

    .venv/bin/python scripts/bench_manifest.py [--lines 1000000] [--formats txt,jsonl,csv]

Each format is read in a fresh child process, so the RSS it reports is the
reader's own (the parent only writes the files). Peak RSS that does not grow with
--lines is the point: nothing is held beyond one chunk.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _write(path: Path, fmt: str, lines: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i in range(lines):
            key = f"photos/2024/{i % 997:03d}/img_{i:08d}.jpg"
            if fmt == "jsonl":
                out.write(f'{{"source-ref": "s3://my-bucket/{key}", "class": {i % 7}}}\n')
            elif fmt == "csv":
                out.write(f"my-bucket,{key}\n")
            else:
                out.write(f"s3://my-bucket/{key}\n")


def _child(path: str) -> None:
    import anyio

    from batchrek.manifest import read_manifest

    async def run() -> dict[str, float]:
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        items = problems = 0
        wall, cpu = time.perf_counter(), time.process_time()
        async for record in read_manifest(path):
            if record.__class__.__name__ == "Item":
                items += 1
            else:
                problems += 1
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return {
            "items": items,
            "problems": problems,
            "seconds": round(wall, 3),
            "lines_per_s": round(items / wall),
            "lines_per_cpu_s": round(items / cpu),
            "rss_before_mib": round(rss_before / 1024, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }

    print(json.dumps(anyio.run(run)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--formats", default="txt,jsonl,csv")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    with tempfile.TemporaryDirectory() as folder:
        for fmt in args.formats.split(","):
            path = Path(folder) / f"bench.{fmt}"
            _write(path, fmt, args.lines)
            size_mib = path.stat().st_size / 2**20
            result = subprocess.run(
                [sys.executable, __file__, "--child", str(path)],
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
            if result.returncode:
                sys.exit(result.stderr)
            stats = json.loads(result.stdout)
            print(f"{fmt:5} {args.lines:>9,} lines {size_mib:6.1f} MiB  {json.dumps(stats)}")


if __name__ == "__main__":
    main()
