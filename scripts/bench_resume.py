"""Benchmark: build the resume index of a 1M-record output, against the obvious way.

    .venv/bin/python scripts/bench_resume.py [--records 1000000] [--dir /tmp]

Writes a realistic output file (records of ~300-600 bytes, a few retryable and
permanent errors, some retried pairs that later succeeded, one torn last line), then
measures, each in a fresh interpreter so peak RSS is its own:

- batchrek: ``load_resume(compact=False)`` - the index only;
- baseline: ``json.loads`` every line, a ``set`` of ``(id, op)`` tuples of done pairs;
- batchrek with compaction (on a copy): torn line cut, superseded records dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

OPS = ("detect_labels", "detect_faces")
LABELS = ("Dog", "Cat", "Person", "Car", "Tree", "Building", "Sky", "Grass", "Road", "Food")


def _response(rng: random.Random, op: str) -> dict[str, Any]:
    if op == "detect_faces":
        faces = [
            {
                "BoundingBox": {
                    k: round(rng.random(), 4) for k in ("Width", "Height", "Left", "Top")
                },
                "Confidence": round(90 + rng.random() * 10, 3),
            }
            for _ in range(rng.randint(0, 2))
        ]
        return {"FaceDetails": faces}
    labels = [
        {"Name": name, "Confidence": round(60 + rng.random() * 40, 3), "Parents": []}
        for name in rng.sample(LABELS, rng.randint(1, 5))
    ]
    return {"Labels": labels, "LabelModelVersion": "3.0"}


def _record(rng: random.Random, n: int, op: str, kind: str) -> bytes:
    item = f"photos/2024/{n % 12 + 1:02d}/IMG_{n:08d}.jpg"
    error = None
    if kind == "retry":
        error = {"code": "ThrottlingException", "message": "Rate exceeded", "retryable": True}
    elif kind == "failed":
        error = {"code": "InvalidImageFormatException", "message": "bad", "retryable": False}
    record = {
        "id": item,
        "source": f"s3://media-bucket/{item}",
        "operation": op,
        "status": "ok" if kind == "ok" else "error",
        "input": "s3object",
        "attempts": rng.randint(1, 3),
        "latency_ms": round(rng.random() * 900, 3),
        "response": _response(rng, op) if kind == "ok" else None,
        "error": error,
    }
    if n % 3 == 0:
        record["meta"] = {"camera": "X-T4", "album": f"album-{n % 97}"}
    return orjson.dumps(record) + b"\n"


def generate(path: Path, records: int) -> dict[str, int]:
    rng = random.Random(7)
    counts = {"ok": 0, "retry": 0, "failed": 0, "retried_later_ok": 0}
    later: list[tuple[int, str]] = []
    with path.open("wb") as f:
        written = 0
        n = 0
        while written < records - len(later):
            for op in OPS:
                roll = rng.random()
                kind = "retry" if roll < 0.004 else "failed" if roll < 0.006 else "ok"
                if kind == "retry" and rng.random() < 0.5:
                    later.append((n, op))
                counts[kind] += 1
                f.write(_record(rng, n, op, kind))
                written += 1
            n += 1
        for n, op in later:  # a rerun that got through
            f.write(_record(rng, n, op, "ok"))
            counts["retried_later_ok"] += 1
        f.write(_record(rng, n + 1, OPS[0], "ok")[:137])  # killed mid-write
    return counts


def _rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _deep_size(pairs: set[tuple[str, str]]) -> int:
    seen: set[int] = set()
    total = sys.getsizeof(pairs)
    for pair in pairs:
        total += sys.getsizeof(pair)
        for s in pair:
            if id(s) not in seen:  # operation names are shared strings
                seen.add(id(s))
                total += sys.getsizeof(s)
    return total


def measure(mode: str, path: Path) -> dict[str, Any]:
    if mode == "baseline":
        before = _rss_kib()
        t0, c0 = time.perf_counter(), time.process_time()
        done: set[tuple[str, str]] = set()
        with path.open("rb") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                err = rec.get("error")
                if rec["status"] == "ok" or (err is not None and not err.get("retryable")):
                    done.add((rec["id"], rec["operation"]))
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        return {
            "seconds": seconds,
            "cpu": cpu,
            "pairs": len(done),
            "index_bytes": _deep_size(done),
            "rss_delta_mib": (_rss_kib() - before) / 1024,
        }
    import anyio

    from batchrek.output import load_resume

    before = _rss_kib()
    t0, c0 = time.perf_counter(), time.process_time()
    state = anyio.run(lambda: load_resume(path, compact=(mode == "compact")))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": seconds,
        "cpu": cpu,
        "pairs": len(state.index),
        "index_bytes": state.index.nbytes,
        "index_sizeof": sys.getsizeof(state.index._keys),
        "rss_delta_mib": (_rss_kib() - before) / 1024,
        "state": {
            k: getattr(state, k)
            for k in (
                "records",
                "done",
                "failed",
                "redo",
                "duplicates",
                "superseded",
                "invalid",
                "torn_lines",
                "torn_bytes",
                "compacted",
            )
        },
    }


def _child(mode: str, path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", mode, str(path)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--measure", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], Path(args.measure[1]))))
        return
    work = Path(tempfile.mkdtemp(dir=args.dir, prefix="bench-resume-"))
    try:
        path = work / "out.jsonl"
        t0 = time.perf_counter()
        counts = generate(path, args.records)
        size = path.stat().st_size
        lines = counts["ok"] + counts["retry"] + counts["failed"] + counts["retried_later_ok"]
        print(
            f"file: {lines:,} records + 1 torn line, {size / 2**20:.0f} MiB, "
            f"{size / lines:.0f} B/record avg; generated in {time.perf_counter() - t0:.1f} s"
        )
        print(f"mix: {counts}")
        print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        ours = _child("index", path)
        base = _child("baseline", path)
        copy = work / "copy.jsonl"
        shutil.copyfile(path, copy)
        comp = _child("compact", copy)
        for name, r in (("batchrek index", ours), ("baseline json+set", base)):
            print(
                f"{name:<18} {r['seconds']:6.2f} s (cpu {r['cpu']:5.2f} s)  "
                f"{r['pairs']:>9,} pairs  "
                f"{r['index_bytes'] / r['pairs']:6.1f} B/pair  "
                f"peak RSS +{r['rss_delta_mib']:.0f} MiB"
            )
        print(f"batchrek index sys.getsizeof: {ours['index_sizeof'] / ours['pairs']:.2f} B/pair")
        print(
            f"speed-up {base['seconds'] / ours['seconds']:.1f}x, "
            f"index {base['index_bytes'] / ours['index_bytes']:.0f}x smaller"
        )
        print(
            f"batchrek with compaction: {comp['seconds']:.2f} s (cpu {comp['cpu']:.2f} s), "
            f"peak RSS +{comp['rss_delta_mib']:.0f} MiB, "
            f"output {copy.stat().st_size / 2**20:.0f} MiB"
        )
        print(f"state: {comp['state']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
