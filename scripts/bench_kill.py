"""Benchmark: what a SIGKILL costs, per output kind, at concurrency 64.

    .venv/bin/python scripts/bench_kill.py [--kills 5] [--pairs 20000] [--seed 6]
        [--kinds file,s3] [--code DIR]

For each output kind (``file``: ``-o out.jsonl``; ``s3``: ``-o s3://bucket/prefix/``
on moto's S3 server, in this process, with the spool in a temp folder) a real run
is SIGKILLed at random moments of full load (0.2-2 s after it has made ``--warmup``
calls: the first second of a run is slow, its image pool still starting), then run
to the end.
Printed: the calls the emulator billed beyond one per pair (the re-billing the kills
cost), per kill, and the output checked: records, duplicates, missing pairs.

The emulator runs in a process of its own (latency 0, no quota); manifests are
JSON Lines with distinct ids over a few image files, run with ``--no-dedupe`` and
``--rate 100000``, so every pair is one real call and the client is CPU-bound.
``--code DIR`` runs the children from another checkout (``PYTHONPATH=DIR``), to
measure a baseline (say, the commit before the spool) in the same conditions.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import orjson
from moto.server import ThreadedMotoServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import ENV, EmulatorProcess, make_images, make_manifest

BUCKET = "bench-kill"


def _argv(manifest: Path, output: str, emu: EmulatorProcess, s3_url: str) -> list[str]:
    return [
        sys.executable, "-m", "batchrek", "run", str(manifest), "-o", output,
        "--endpoint-url", emu.url, "--s3-endpoint-url", s3_url, "--region", "us-east-1",
        "--no-progress", "--no-dedupe", "--rate", "100000", "--log-interval-s", "3600",
    ]  # fmt: skip


def _records(kind: str, output: str, s3: Any) -> list[bytes]:
    if kind == "file":
        return Path(output).read_bytes().splitlines() if Path(output).exists() else []
    prefix = output.removeprefix(f"s3://{BUCKET}/")
    lines: list[bytes] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", ()):
            lines += s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read().splitlines()
    return lines


def _check(lines: list[bytes], pairs: int) -> tuple[int, int, int]:
    """(records, duplicate records, pairs missing)."""
    seen = Counter(orjson.loads(line)["id"] for line in lines)
    return len(lines), sum(n - 1 for n in seen.values() if n > 1), pairs - len(seen)


def _drained(emu: EmulatorProcess) -> None:
    """Calls a killed client left in flight still finish (and bill) in the service."""
    deadline = time.monotonic() + 30
    while emu.control.stats()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)


def measure(
    kind: str,
    *,
    emu: EmulatorProcess,
    s3_url: str,
    s3: Any,
    folder: Path,
    manifest: Path,
    pairs: int,
    kills: int,
    seed: int,
    warmup: int,
    env: dict[str, str],
) -> dict[str, Any]:
    if kind == "file":
        output = str(folder / f"kill-{uuid.uuid4().hex}.jsonl")
    else:
        output = f"s3://{BUCKET}/kill-{uuid.uuid4().hex}/"
    argv = _argv(manifest, output, emu, s3_url)
    # ``python -m`` puts the working folder first on sys.path: run in the code's own.
    code = env["PYTHONPATH"]
    rng = random.Random(seed)
    start = emu.analyses()
    landed = 0
    for _ in range(kills):
        before = emu.analyses()
        proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=code
        )
        deadline = time.monotonic() + 60
        while emu.analyses() < before + warmup and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.2, 2.0))
        landed += proc.poll() is None
        proc.kill()
        proc.wait()
        _drained(emu)
    final = subprocess.run(argv, capture_output=True, env=env, cwd=code, check=False)
    _drained(emu)
    records, duplicates, missing = _check(_records(kind, output, s3), pairs)
    extra = emu.analyses() - start - pairs
    return {
        "kind": kind,
        "landed": landed,
        "final": final.returncode,
        "records": records,
        "duplicates": duplicates,
        "missing": missing,
        "extra": extra,
        "per_kill": extra / max(1, kills),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--kinds", default="file,s3")
    parser.add_argument("--warmup", type=int, default=1000, help="calls before a kill may land")
    parser.add_argument("--code", default=None, help="run the children from this checkout")
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    env = dict(ENV)
    if args.code:
        env["PYTHONPATH"] = str(Path(args.code).resolve())
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    s3_url = f"http://{host}:{port}"
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    s3.create_bucket(Bucket=BUCKET)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-kill-") as tmp:
            folder = Path(tmp)
            env["BATCHREK_SPOOL_DIR"] = str(folder / "spool")
            images = make_images(folder / "imgs", 16)
            manifest = make_manifest(folder / "m.jsonl", args.pairs, images)
            emu = EmulatorProcess()
            try:
                print(f"emulator {emu.url} (own process, latency 0, no quota); moto {s3_url}; "
                      f"cpus {os.cpu_count()}; code {env['PYTHONPATH']}")  # fmt: skip
                print(f"{args.pairs:,} pairs, --concurrency 64 (default), --rate 100000, "
                      f"{args.kills} SIGKILLs at random moments (seed {args.seed}) once "
                      f"{args.warmup} calls are made, then a run to the end")  # fmt: skip
                print()
                print(f"{'output':<8}{'landed':>8}{'exit':>6}{'records':>10}{'dups':>6}"
                      f"{'missing':>9}{'extra calls':>13}{'per kill':>10}")  # fmt: skip
                for kind in args.kinds.split(","):
                    r = measure(
                        kind,
                        emu=emu,
                        s3_url=s3_url,
                        s3=s3,
                        folder=folder,
                        manifest=manifest,
                        pairs=args.pairs,
                        kills=args.kills,
                        seed=args.seed,
                        warmup=args.warmup,
                        env=env,
                    )
                    print(f"{kind:<8}{r['landed']:>8}{r['final']:>6}{r['records']:>10}"
                          f"{r['duplicates']:>6}{r['missing']:>9}{r['extra']:>13}"
                          f"{r['per_kill']:>10.0f}")  # fmt: skip
            finally:
                emu.close()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
