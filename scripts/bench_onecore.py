"""Benchmark "One core": the client alone on a core, the service on the other.

    .venv/bin/python scripts/bench_onecore.py [--requests 12000] [--concurrency 64,256]
        [--repeats 2] [--contenders lean,sdk,aioloop,pool]

The other benchmarks let the emulator and the client share both cores, so they
measure the sum of two processes' CPU. Here the emulator is pinned to one core
(``taskset -c 1``, 127.0.0.1, 50 ms latency, no quota) and every client to the other
(``taskset -c 0``, threads included), so a client's images/s is what one core of
client buys, and its CPU per image is its own (user + system, ``getrusage`` of the
child around the run: start-up of the run and its clients included, interpreter
start and imports not; the whole process's figure from ``wait4`` is printed too).

Contenders, each at every concurrency (64 and 256 by default):

- ``lean``: batchrek through the library, ``request_path = "lean"``;
- ``sdk``: the same with ``request_path = "sdk"`` (every call through aiobotocore);
- ``aioloop``: the smallest fast async loop, one aiobotocore client and N tasks;
- ``pool``: boto3 + ThreadPoolExecutor(N), as users usually write it.

Every run sends ``--requests`` DetectLabels requests (distinct ids cycling through
``--files`` distinct JPEGs; batchrek with dedupe off and a fixed rate far above what
one core can send) and is bounded by ``--max-run-s``. Runs alternate their order
each repeat; the machine is shared, so each figure is printed per run, then the best.
The emulator's own CPU share is printed too: near 100 % would mean the server, not
the client, was the limit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _benchlib import (
    EmulatorProcess,
    api_requests,
    count_ok_records,
    fmt_table,
    make_images,
    run_child,
    write_jsonl_manifest,
)

CLIENT_CPU = "0"
SERVER_CPU = "1"
UNLIMITED_RATE = "100000"
LABELS = {
    "lean": "batchrek (lean)",
    "sdk": "batchrek (sdk)",
    "aioloop": "aiobotocore loop",
    "pool": "boto3 + threads",
}


def _run(
    kind: str,
    concurrency: int,
    emu: EmulatorProcess,
    manifest: Path,
    work: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    out = work / "out.jsonl"
    out.unlink(missing_ok=True)
    emu.reset()
    spec: dict[str, Any] = {
        "manifest": str(manifest),
        "endpoint_url": emu.url,
        "max_s": args.max_run_s,
    }
    if kind in ("lean", "sdk"):
        child_kind = "batchrek"
        spec |= {
            "output": str(out),
            "concurrency": concurrency,
            "rate": UNLIMITED_RATE,
            "dedupe": False,
            "request_path": kind,
        }
    else:
        child_kind = kind
        spec |= {"workers": concurrency, "retry_mode": "standard"}
    emu_cpu0 = emu.cpu_s()
    child = run_child(child_kind, spec, max_s=args.max_run_s, cpus=CLIENT_CPU)
    emu_cpu = emu.cpu_s() - emu_cpu0
    rep = child.report
    if child_kind == "batchrek":
        ok, _records = count_ok_records(out)
        elapsed = float(rep["summary"]["elapsed_s"])
    else:
        ok = int(rep.get("ok", 0))
        elapsed = float(rep.get("run_wall_s", 0.0))
    cpu = float(rep.get("run_cpu_all_s", 0.0))
    return {
        "ok": ok,
        "elapsed": elapsed,
        "per_s": ok / elapsed if elapsed else 0.0,
        "cpu_us": 1e6 * cpu / max(1, ok),
        "proc_cpu_us": 1e6 * child.cpu_s / max(1, ok),
        "busy": cpu / elapsed if elapsed else 0.0,
        "emu_busy": emu_cpu / child.wall_s if child.wall_s else 0.0,
        "sent": api_requests(emu.control.stats()).get("ok", 0),
        "rc": child.returncode,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=12_000)
    p.add_argument("--files", type=int, default=2_000, help="distinct JPEGs the lines cycle")
    p.add_argument("--concurrency", default="64,256")
    p.add_argument("--contenders", default="lean,sdk,aioloop,pool")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--latency-ms", type=float, default=50.0)
    p.add_argument("--max-run-s", type=float, default=90.0, help="time bound of one run")
    args = p.parse_args()
    if (os.cpu_count() or 1) < 2:
        print("needs two cores: one for the client, one for the emulator", file=sys.stderr)
        return 2
    levels = [int(c) for c in args.concurrency.split(",")]
    kinds = [k for k in args.contenders.split(",") if k]
    unknown = set(kinds) - set(LABELS)
    if unknown:
        print(f"unknown contenders: {sorted(unknown)}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-onecore-"))
    try:
        images = make_images(work / "img", min(args.files, args.requests))
        manifest = write_jsonl_manifest(work / "lines.jsonl", images, args.requests)
        print(
            f"{args.requests:,} lines over {len(images):,} distinct JPEGs; client on CPU "
            f"{CLIENT_CPU}, emulator on CPU {SERVER_CPU}; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
            flush=True,
        )
        runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
        order = [(k, c) for c in levels for k in kinds]
        with EmulatorProcess(
            latency_ms=args.latency_ms, log=work / "emulator.log", cpus=SERVER_CPU
        ) as emu:
            print(f"emulator {emu.url} (pid {emu.proc.pid})", flush=True)
            for repeat in range(args.repeats):
                for kind, conc in order if repeat % 2 == 0 else order[::-1]:
                    r = _run(kind, conc, emu, manifest, work, args)
                    runs.setdefault((kind, conc), []).append(r)
                    print(
                        f"  {LABELS[kind]} @{conc}: {r['ok']:,} ok in {r['elapsed']:.1f} s = "
                        f"{r['per_s']:,.0f}/s, {r['cpu_us']:.0f} us CPU/image "
                        f"(client core {100 * r['busy']:.0f} % busy, emulator "
                        f"{100 * r['emu_busy']:.0f} %), load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
        _report(runs, kinds, levels, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


def _report(
    runs: dict[tuple[str, int], list[dict[str, Any]]],
    kinds: list[str],
    levels: list[int],
    args: argparse.Namespace,
) -> None:
    rows = []
    best_of: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        for conc in levels:
            rs = runs[(kind, conc)]
            best = max(rs, key=lambda r: r["per_s"])
            if kind not in best_of or best["per_s"] > best_of[kind]["per_s"]:
                best_of[kind] = best | {"concurrency": conc}
            rows.append(
                [
                    LABELS[kind],
                    conc,
                    " / ".join(f"{r['per_s']:,.0f}" for r in rs),
                    " / ".join(f"{r['cpu_us']:.0f}" for r in rs),
                    " / ".join(f"{r['proc_cpu_us']:.0f}" for r in rs),
                    " / ".join(f"{100 * r['busy']:.0f}%" for r in rs),
                    " / ".join(f"{100 * r['emu_busy']:.0f}%" for r in rs),
                ]
            )
    print()
    print(
        f"One core: {args.requests:,} DetectLabels requests per run, emulator latency "
        f"{args.latency_ms:g} ms on its own core, no quota; each run of {args.repeats}"
    )
    print(
        fmt_table(
            [
                "contender",
                "in flight",
                "images/s",
                "CPU us/image (run)",
                "(whole process)",
                "client core busy",
                "emulator core busy",
            ],
            rows,
        )
    )
    pool = best_of.get("pool")
    print()
    summary = []
    for kind in kinds:
        b = best_of[kind]
        ratio = f"{b['per_s'] / pool['per_s']:.2f}x" if pool else "-"
        cpus = [r["cpu_us"] for c in levels for r in runs[(kind, c)]]
        summary.append(
            [
                LABELS[kind],
                b["concurrency"],
                b["per_s"],
                ratio,
                b["cpu_us"],
                f"{min(cpus):.0f}-{max(cpus):.0f}",
            ]
        )
    print("Each contender at its best concurrency (best run):")
    print(
        fmt_table(
            [
                "contender",
                "best at",
                "images/s",
                "vs threads' best",
                "CPU us/image",
                "CPU range, all runs",
            ],
            summary,
        )
    )
    print("targets: batchrek (lean) >= 2x the thread pool's best images/s; <= 400 us CPU/image")


if __name__ == "__main__":
    sys.exit(main())
