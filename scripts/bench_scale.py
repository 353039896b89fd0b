"""Benchmark: memory and correctness at production scale, through the real CLI.

    .venv/bin/python scripts/bench_scale.py [--dir /tmp] [--real 100000,300000]
        [--skip 100000,1000000] [--kills 5] [--kill-pairs 20000] [--seed 6]

The emulator runs in a process of its own (latency 0, no quota); every batchrek run is
a child process and its peak RSS is that child's own ``ru_maxrss`` (``os.wait4``).
Manifests are JSON Lines with distinct ids over a few distinct image files, run with
``--no-dedupe``, so every line is one real call.

Measured:

- real calls: a fresh run over N lines (every pair called and written);
- skip path: a rerun over a complete output of N pairs (index built from the output,
  the whole manifest read, every pair skipped, no call made). For 1M the complete
  output is generated (records as batchrek writes them) instead of called for;
- resume index alone: ``load_resume(compact=False)`` on the 1M-record output, in a
  child process;
- kill/resume: a real run SIGKILLed at random moments, then run to completion:
  records against pairs, duplicates, and the calls the emulator saw beyond one per pair.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batchrek.emulator import EmulatorControl  # noqa: E402
from batchrek.testing import corpus  # noqa: E402

OP = "detect_labels"
ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
}


@dataclass
class Run:
    code: int
    wall_s: float
    rss_mib: float
    calls: int  # requests the emulator saw during the run


# -- the emulator and the children ------------------------------------------------------


class EmulatorProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "batchrek", "emulator", "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=ENV,
            cwd=ROOT,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise RuntimeError("the emulator did not start")
        self.control = EmulatorControl(self.url)

    def requests(self) -> int:
        return int(self.control.stats()["total_requests"])

    def analyses(self) -> int:
        return sum(self.control.stats()["analyses"].get("DetectLabels", {}).values())

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def _argv(manifest: Path, out: Path, emu: EmulatorProcess) -> list[str]:
    return [
        sys.executable, "-m", "batchrek", "run", str(manifest), "-o", str(out),
        "--endpoint-url", emu.url, "--region", "us-east-1", "--no-progress",
        "--no-dedupe", "--rate", "100000", "--log-interval-s", "3600",
    ]  # fmt: skip


def _reap(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    """Wait for ``proc`` and return (exit code, its own peak RSS in MiB)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024  # Linux: KiB


def run_cli(argv: list[str], emu: EmulatorProcess) -> Run:
    before = emu.requests()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    code, rss = _reap(proc)
    return Run(code, time.perf_counter() - t0, rss, emu.requests() - before)


# -- inputs -----------------------------------------------------------------------------


def make_images(folder: Path, count: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img-{i}.jpg"
        path.write_bytes(corpus.photo(120 + i, 100))
        paths.append(str(path))
    return paths


def _item_id(n: int) -> str:
    return f"photos/2026/{n % 12 + 1:02d}/IMG_{n:08d}.jpg"


def make_manifest(path: Path, lines: int, images: list[str]) -> Path:
    with path.open("wb") as f:
        for start in range(0, lines, 10_000):
            f.write(
                b"".join(
                    orjson.dumps({"id": _item_id(n), "image": images[n % len(images)]}) + b"\n"
                    for n in range(start, min(lines, start + 10_000))
                )
            )
    return path


def make_complete_output(path: Path, lines: int, images: list[str]) -> Path:
    """One ok record per pair, shaped as batchrek writes them (key order included)."""
    rng = random.Random(7)
    labels = ("Dog", "Cat", "Person", "Car", "Tree", "Building", "Sky", "Grass")
    with path.open("wb") as f:
        for start in range(0, lines, 10_000):
            chunk = []
            for n in range(start, min(lines, start + 10_000)):
                record = {
                    "id": _item_id(n),
                    "source": images[n % len(images)],
                    "operation": OP,
                    "status": "ok",
                    "input": "bytes",
                    "attempts": 1,
                    "latency_ms": round(rng.random() * 50, 3),
                    "response": {
                        "Labels": [
                            {"Name": name, "Confidence": round(60 + rng.random() * 40, 3)}
                            for name in rng.sample(labels, 3)
                        ],
                        "LabelModelVersion": "3.0",
                    },
                    "error": None,
                }
                chunk.append(orjson.dumps(record) + b"\n")
            f.write(b"".join(chunk))
    return path


def check_output(out: Path, lines: int) -> tuple[int, int, int]:
    """(records, duplicate records, pairs missing) of an output over ``lines`` ids."""
    seen: Counter[str] = Counter()
    records = 0
    with out.open("rb") as f:
        for line in f:
            record = orjson.loads(line)
            seen[record["id"]] += 1
            records += 1
    duplicates = sum(n - 1 for n in seen.values() if n > 1)
    return records, duplicates, lines - len(seen)


# -- measurements -----------------------------------------------------------------------

_INDEX_CHILD = """
import resource, sys, time, anyio
from batchrek.output import load_resume
t0 = time.perf_counter()
state = anyio.run(lambda: load_resume(sys.argv[1], compact=False))
print(time.perf_counter() - t0, len(state), state.index.nbytes,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def measure_index(out: Path) -> tuple[float, int, int, float]:
    done = subprocess.run(
        [sys.executable, "-c", _INDEX_CHILD, str(out)],
        capture_output=True, text=True, env=ENV, check=True,
    )  # fmt: skip
    secs, pairs, nbytes, rss = done.stdout.split()
    return float(secs), int(pairs), int(nbytes), float(rss)


def kill_resume(
    emu: EmulatorProcess, folder: Path, images: list[str], pairs: int, kills: int, seed: int
) -> dict[str, Any]:
    manifest = make_manifest(folder / f"kill-{pairs}.jsonl", pairs, images)
    out = folder / f"kill-{pairs}.out.jsonl"
    out.unlink(missing_ok=True)
    argv = _argv(manifest, out, emu)
    rng = random.Random(seed)
    start = emu.analyses()
    landed = 0
    for _ in range(kills):
        before = emu.requests()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        deadline = time.monotonic() + 60
        while emu.requests() == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.2, 2.0))
        if proc.poll() is None:  # poll() reaps a child that already ended
            landed += 1
            proc.kill()
            _reap(proc)
    final = run_cli(argv, emu)
    time.sleep(0.2)  # let the emulator finish calls a killed client left in flight
    records, duplicates, missing = check_output(out, pairs)
    return {
        "pairs": pairs,
        "kills": kills,
        "kills_mid_run": landed,
        "final_code": final.code,
        "records": records,
        "duplicates": duplicates,
        "missing": missing,
        "extra_calls": emu.analyses() - start - pairs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="working folder (default: a temp dir)")
    parser.add_argument("--real", default="100000,300000", help="lines for real-call runs")
    parser.add_argument("--skip", default="100000,1000000", help="lines for skip-path reruns")
    parser.add_argument("--images", type=int, default=16, help="distinct image files")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--kill-pairs", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    real = [int(n) for n in args.real.split(",") if n]
    skip = [int(n) for n in args.skip.split(",") if n]

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-scale-") as tmp:
        folder = Path(tmp)
        images = make_images(folder / "imgs", args.images)
        emu = EmulatorProcess()
        try:
            print(f"emulator {emu.url} (own process, latency 0, no quota); cpus {os.cpu_count()}")
            print(f"{args.images} distinct JPEGs repeated under distinct ids, --no-dedupe, "
                  f"--concurrency 64 (default), --rate 100000")  # fmt: skip
            print()
            print(f"{'run':<34}{'lines':>10}{'exit':>6}{'wall s':>9}{'pairs/s':>9}"
                  f"{'calls':>10}{'peak RSS MiB':>14}")  # fmt: skip
            rows: dict[tuple[str, int], Run] = {}
            for n in real:
                manifest = make_manifest(folder / f"m-{n}.jsonl", n, images)
                out = folder / f"real-{n}.jsonl"
                r = run_cli(_argv(manifest, out, emu), emu)
                rows[("real", n)] = r
                records, dups, missing = check_output(out, n)
                print(f"{'real calls (fresh output)':<34}{n:>10}{r.code:>6}{r.wall_s:>9.1f}"
                      f"{n / r.wall_s:>9.0f}{r.calls:>10}{r.rss_mib:>14.1f}"
                      f"   records {records}, dup {dups}, missing {missing}")  # fmt: skip
            for n in skip:
                manifest = folder / f"m-{n}.jsonl"
                if not manifest.exists():
                    make_manifest(manifest, n, images)
                out = folder / f"real-{n}.jsonl"
                label = "skip path (rerun, real output)"
                if not out.exists():
                    out = make_complete_output(folder / f"done-{n}.jsonl", n, images)
                    label = "skip path (rerun, made output)"
                size = out.stat().st_size
                r = run_cli(_argv(manifest, out, emu), emu)
                rows[("skip", n)] = r
                print(f"{label:<34}{n:>10}{r.code:>6}{r.wall_s:>9.1f}"
                      f"{n / r.wall_s:>9.0f}{r.calls:>10}{r.rss_mib:>14.1f}"
                      f"   output {size / 2**20:.0f} MiB")  # fmt: skip
            print()
            for kind in ("real", "skip"):
                sizes = sorted(n for k, n in rows if k == kind)
                if len(sizes) >= 2:
                    lo, hi = rows[(kind, sizes[0])], rows[(kind, sizes[-1])]
                    ratio = hi.rss_mib / lo.rss_mib
                    verdict = "ok" if ratio <= 1.3 and hi.rss_mib < 300 else "OVER TARGET"
                    print(f"{kind}: peak RSS {sizes[-1]:,} / {sizes[0]:,} lines = {ratio:.2f}x "
                          f"(target <= 1.3x and < 300 MiB: {verdict})")  # fmt: skip
            biggest = max(skip) if skip else 0
            if biggest:
                made = folder / f"done-{biggest}.jsonl"
                if not made.exists():
                    made = make_complete_output(made, biggest, images)
                secs, pairs, nbytes, rss = measure_index(made)
                print()
                print(f"resume index alone, {pairs:,} records ({made.stat().st_size / 2**20:.0f} "
                      f"MiB): {secs:.2f} s, index {nbytes / 2**20:.1f} MiB, "
                      f"peak RSS {rss:.1f} MiB (child process)")  # fmt: skip
            if args.kills:
                k = kill_resume(emu, folder, images, args.kill_pairs, args.kills, args.seed)
                print()
                print(f"kill/resume: {k['pairs']:,} pairs, {k['kills']} SIGKILLs at random "
                      f"moments (seed {args.seed}; {k['kills_mid_run']} landed mid-run), then "
                      f"a run to the end (exit {k['final_code']})")  # fmt: skip
                print(f"  records {k['records']:,} for {k['pairs']:,} pairs, duplicates "
                      f"{k['duplicates']}, missing {k['missing']}, extra calls "
                      f"{k['extra_calls']} ({k['extra_calls'] / max(1, k['kills']):.0f} "
                      f"per kill)")  # fmt: skip
        finally:
            emu.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
