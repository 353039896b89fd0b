"""What refusing repeated ids costs: bytes per id and ids/s of ``SeenIds`` at 10M ids,
beside a Python ``set`` of the same ids, and the manifest read with and without it.

    .venv/bin/python scripts/bench_dupes.py [--ids 10000000] [--lines 10000000]

Part 1, the structure alone: each variant runs in a fresh child process that makes
``--ids`` distinct ids (``s3://my-bucket/photos/2024/NNN/img_NNNNNNNN.jpg``, 45
characters, as an S3 manifest has them) and adds each one:

- ``none``: only makes the ids (the loop's own cost, subtracted from the others);
- ``SeenIds``: batchrek's set (8-byte hash + 4-byte first line, sorted buckets);
- ``set``: a Python set of the id strings (what the obvious code keeps).

Peak RSS less the RSS before the loop is the memory the structure holds.

Part 2, in context: a ``--lines`` txt manifest read through ``read_manifest`` and the
run's ``Selection``, with ``unique_ids`` on (the default) and off; lines/s and peak RSS.
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


def _id(i: int) -> str:
    return f"s3://my-bucket/photos/2024/{i % 997:03d}/img_{i:08d}.jpg"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_structure(kind: str, ids: int) -> dict[str, float]:
    from batchrek.manifest import SeenIds

    before = _rss_mib()
    t0 = time.process_time()
    if kind == "none":
        for i in range(ids):
            _id(i)
    elif kind == "SeenIds":
        seen = SeenIds()
        for i in range(ids):
            if seen.add(_id(i), i + 1) is not None:
                raise SystemExit("a false repeat")
    else:
        plain: set[str] = set()
        for i in range(ids):
            item = _id(i)
            if item in plain:
                raise SystemExit("a false repeat")
            plain.add(item)
    seconds = time.process_time() - t0
    held = _rss_mib() - before
    return {"seconds": seconds, "held_mib": held, "bytes_per_id": held * 2**20 / ids}


def _child_read(path: str, unique: bool) -> dict[str, float]:
    import anyio

    from batchrek.manifest import Selection, read_manifest

    async def run() -> dict[str, float]:
        before = _rss_mib()
        items = 0
        t0, c0 = time.perf_counter(), time.process_time()
        async for entry in Selection(unique_ids=unique).select(read_manifest(path)):
            items += entry.__class__.__name__ == "Item"
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        return {
            "items": items,
            "seconds": seconds,
            "cpu_s": cpu,
            "lines_per_cpu_s": items / cpu,
            "peak_rss_mib": _rss_mib(),
            "held_mib": _rss_mib() - before,
        }

    return anyio.run(run)


def _spawn(*args: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    if result.returncode:
        sys.exit(result.stderr)
    stats: dict[str, float] = json.loads(result.stdout)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=10_000_000)
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, *rest = args.child
        if what == "structure":
            print(json.dumps(_child_structure(rest[0], int(rest[1]))))
        else:
            print(json.dumps(_child_read(rest[0], rest[1] == "on")))
        return

    print(f"Part 1: {args.ids:,} distinct ids, each added once (fresh process each)")
    rows = {kind: _spawn("structure", kind, str(args.ids)) for kind in ("none", "SeenIds", "set")}
    base = rows["none"]["seconds"]
    print(f"  {'':8} {'CPU s':>8} {'ids/s':>11} {'us/id':>7} {'held MiB':>9} {'B/id':>6}")
    for kind, row in rows.items():
        extra = (row["seconds"] - base) / args.ids * 1e6 if kind != "none" else 0.0
        rate = args.ids / (row["seconds"] - base) if kind != "none" else args.ids / base
        print(
            f"  {kind:8} {row['seconds']:8.2f} {rate:11,.0f} {extra:7.2f} "
            f"{row['held_mib']:9.1f} {row['bytes_per_id']:6.1f}"
        )
    print("  (CPU time, not wall: the machine is shared. ids/s and us/id are the structure's")
    print("  own work, the making of the ids taken out)")

    print(f"\nPart 2: a {args.lines:,}-line txt manifest read through the run's Selection")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.txt"
        with path.open("w", encoding="utf-8") as out:
            for i in range(args.lines):
                out.write(_id(i) + "\n")
        reads = {mode: _spawn("read", str(path), mode) for mode in ("off", "on")}
    for mode, row in reads.items():
        print(
            f"  unique_ids {mode:3}  {row['cpu_s']:7.2f} CPU s  "
            f"{row['lines_per_cpu_s']:9,.0f} lines/CPU s  "
            f"peak RSS {row['peak_rss_mib']:7.1f} MiB (held {row['held_mib']:.1f})"
        )
    slower = reads["on"]["cpu_s"] / reads["off"]["cpu_s"]
    held = (reads["on"]["held_mib"] - reads["off"]["held_mib"]) * 2**20 / args.lines
    print(f"  refusing repeated ids: {slower:.2f}x the CPU, {held:.1f} more bytes per line")


if __name__ == "__main__":
    main()
