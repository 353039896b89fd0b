"""Benchmark: the second night over a nightly S3 Inventory, with the ledger and with
the baseline (resume into one output prefix).

    .venv/bin/python scripts/bench_ledger.py [--objects 20000] [--synthetic 1000000,10000000]

Everything local: moto's S3 server and the emulator each in their own process on
127.0.0.1, batchrek as the CLI (``--rate 100000``: a fixed, high rate; the emulator
has no latency and no quota). Steps:

1. ``--objects`` small JPEGs (distinct bytes) in a bucket; an S3 Inventory (CSV,
   Bucket/Key/Size/ETag) of them.
2. Night 1: every object analysed into ``s3://out/shared/`` with ``--ledger
   s3://out/ledger/``.
3. Between nights: 2 % new keys, 1 % overwritten with new content, 1 % copied under
   new keys, 1 % deleted; a new inventory.
4. Night 2 with the ledger, into its own prefix: requests billed vs new + changed.
5. Night 2 as the baseline: no ledger, resume into ``s3://out/shared/``: its requests,
   the bytes it reads back, the stale results it keeps (overwritten images keep their
   night-1 result; their ids are "done").
6. Ledger bytes per entry; the ledger's load time and memory at 1M and 10M synthetic
   entries (10 segments each, loaded in a fresh interpreter).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import orjson
from _benchlib import CHILD_ENV, ROOT, EmulatorProcess, fmt_table

sys.path.insert(0, str(ROOT))
from batchrek.testing import corpus

BUCKET, OUT = "photos", "out"
OP_API = "DetectLabels"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Moto:
    """moto's S3 server in its own process."""

    def __init__(self, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=self._log,
            env={**os.environ, **CHILD_ENV},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._log.close()


def _client(url: str) -> Any:
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(max_pool_connections=16, retries={"mode": "standard"}),
    )


def _body(base: bytes, n: int, salt: int = 0) -> bytes:
    # Bytes after the JPEG's EOI marker: ignored by decoders, distinct ETags for free.
    return base + f"batchrek-bench-{n}-{salt}".encode()


def _put_all(s3: Any, items: list[tuple[str, bytes]]) -> None:
    with ThreadPoolExecutor(12) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=BUCKET, Key=kv[0], Body=kv[1]), items))


def _listing(s3: Any) -> list[tuple[str, int, str]]:
    rows = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for e in page.get("Contents", ()):
            rows.append((e["Key"], e["Size"], e["ETag"].strip('"')))
    return rows


def _inventory(s3: Any, name: str) -> str:
    """An S3 Inventory of the bucket as it is now: manifest.json + one gzip CSV."""
    rows = _listing(s3)
    buf = io.StringIO()
    for key, size, etag in rows:
        buf.write(f'"{BUCKET}","{key}","{size}","{etag}"\n')
    data = gzip.compress(buf.getvalue().encode())
    data_key = f"inventory/{name}/data.csv.gz"
    s3.put_object(Bucket=OUT, Key=data_key, Body=data)
    manifest = {
        "sourceBucket": BUCKET,
        "destinationBucket": f"arn:aws:s3:::{OUT}",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, ETag",
        "files": [{"key": data_key, "size": len(data), "MD5checksum": ""}],
    }
    key = f"inventory/{name}/manifest.json"
    s3.put_object(Bucket=OUT, Key=key, Body=json.dumps(manifest).encode())
    return f"s3://{OUT}/{key}"


def _prefix_bytes(s3: Any, prefix: str) -> tuple[int, int]:
    total = count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=OUT, Prefix=prefix):
        for e in page.get("Contents", ()):
            total += e["Size"]
            count += 1
    return total, count


def _run(emu: EmulatorProcess, moto: Moto, manifest: str, *args: str, log: Path) -> dict[str, Any]:
    emu.reset()
    metrics = log.with_suffix(".metrics.json")
    cmd = [
        sys.executable,
        "-m",
        "batchrek",
        "run",
        manifest,
        "--endpoint-url",
        emu.url,
        "--s3-endpoint-url",
        moto.url,
        "--region",
        "us-east-1",
        "--rate",
        "100000",
        "--concurrency",
        "64",
        "--no-progress",
        "--log-interval-s",
        "60",
        "--metrics-out",
        str(metrics),
        *args,
    ]
    t0 = time.perf_counter()
    with log.open("wb") as err:
        code = subprocess.run(
            cmd,
            stderr=err,
            stdout=subprocess.DEVNULL,
            env={**os.environ, **CHILD_ENV},
            cwd=ROOT,
            timeout=3600,
        ).returncode
    wall = time.perf_counter() - t0
    stats = emu.control.stats()
    billed = sum(stats.get("analyses", {}).get(OP_API, {}).values())
    summary = orjson.loads(metrics.read_bytes()) if metrics.exists() else {}
    if code not in (0, 1):
        raise RuntimeError(f"batchrek exited {code}; see {log}")
    return {
        "wall_s": wall,
        "billed": billed,
        "requests": stats.get("total_requests", 0),
        "summary": summary,
        "code": code,
    }


def _scenario(objects: int, work: Path) -> dict[str, Any]:
    moto = Moto(work / "moto.log")
    try:
        s3 = _client(moto.url)
        s3.create_bucket(Bucket=BUCKET)
        s3.create_bucket(Bucket=OUT)
        base = corpus.photo(120, 100, box=(0.1, 0.2, 0.6, 0.7))
        t0 = time.perf_counter()
        keys = [f"img/{n:07d}.jpg" for n in range(objects)]
        _put_all(s3, [(k, _body(base, n)) for n, k in enumerate(keys)])
        print(f"# {objects} objects in moto in {time.perf_counter() - t0:.1f} s", flush=True)
        inv1 = _inventory(s3, "night-1")
        with EmulatorProcess(s3_endpoint_url=moto.url, log=work / "emulator.log") as emu:
            night1 = _run(
                emu,
                moto,
                inv1,
                "-o",
                f"s3://{OUT}/shared/",
                "--ledger",
                f"s3://{OUT}/ledger/",
                log=work / "night1.log",
            )
            lat = night1["summary"].get("latency_ms", {})
            print(
                f"# night 1: {night1['wall_s']:.1f} s, billed {night1['billed']}, "
                f"service latency p50 {lat.get('p50', 0):.1f} ms p99 {lat.get('p99', 0):.1f} ms",
                flush=True,
            )
            rng = random.Random(14)
            shuffled = keys[:]
            rng.shuffle(shuffled)
            k = objects // 100
            overwritten, copied, deleted = (
                shuffled[:k],
                shuffled[k : 2 * k],
                shuffled[2 * k : 3 * k],
            )
            new = [(f"new/{n:07d}.jpg", _body(base, n, salt=2)) for n in range(2 * k)]
            _put_all(s3, [(key, _body(base, n, salt=1)) for n, key in enumerate(overwritten)] + new)
            with ThreadPoolExecutor(12) as pool:
                list(
                    pool.map(
                        lambda key: s3.copy_object(
                            Bucket=BUCKET,
                            Key="copy/" + key,
                            CopySource={"Bucket": BUCKET, "Key": key},
                        ),
                        copied,
                    )
                )
                list(pool.map(lambda key: s3.delete_object(Bucket=BUCKET, Key=key), deleted))
            inv2 = _inventory(s3, "night-2")
            ledger_bytes, ledger_objects = _prefix_bytes(s3, "ledger/")
            night2 = _run(
                emu,
                moto,
                inv2,
                "-o",
                f"s3://{OUT}/night-2/",
                "--ledger",
                f"s3://{OUT}/ledger/",
                log=work / "night2-ledger.log",
            )
            print(
                f"# night 2 (ledger): {night2['wall_s']:.1f} s, billed {night2['billed']}",
                flush=True,
            )
            shared_bytes, shared_objects = _prefix_bytes(s3, "shared/")
            base2 = _run(
                emu, moto, inv2, "-o", f"s3://{OUT}/shared/", log=work / "night2-resume.log"
            )
            print(
                f"# night 2 (resume): {base2['wall_s']:.1f} s, billed {base2['billed']}", flush=True
            )
        return {
            "objects": objects,
            "k": k,
            "night1": night1,
            "night2": night2,
            "baseline": base2,
            "expected": 2 * k + k,  # new + changed (copies are reused, deleted are gone)
            "ledger_bytes": ledger_bytes,
            "ledger_objects": ledger_objects,
            "ledger_entries": night1["summary"].get("ok", 0),
            "shared_bytes": shared_bytes,
            "shared_objects": shared_objects,
            "stale": k,  # overwritten ids the baseline skips by id: their night-1 result stays
        }
    finally:
        moto.stop()


_LOAD_CHILD = """
import os, resource, sys, time, anyio
sys.path.insert(0, {root!r})
from batchrek.ledger import load_index
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
index = anyio.run(lambda: load_index({path!r}, s3=None))
dt = time.perf_counter() - t0
probe = time.perf_counter()
for key in range(1, 100001):
    index.content_of(key * 7919)
per_lookup = (time.perf_counter() - probe) / 100000
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(index), dt, index.nbytes, rss0, rss1, per_lookup)
"""


def _synthetic(entries: int, folder: Path) -> dict[str, Any]:
    """``entries`` random entries in 10 segments (as ten nights' shards would leave)."""
    import numpy as np

    from batchrek.ledger._entry import DTYPE, checks_of

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(14)
    per = entries // 10
    for seg in range(10):
        arr = np.zeros(per, dtype=DTYPE)
        arr["id"] = rng.integers(0, 2**63, per, dtype=np.uint64)
        arr["content"] = rng.integers(0, 2**63, per, dtype=np.uint64)
        arr["loc"] = (np.arange(per, dtype=np.uint64) * np.uint64(3000)) << np.uint64(24)
        arr["length"] = 3000
        arr["check"] = checks_of(arr)
        name = f"seg-2026010{seg}T000000Z000000-0000-000000"
        (folder / f"{name}.outputs").write_text(f"s3://out/night-{seg}/part.jsonl\n")
        (folder / f"{name}.entries").write_bytes(arr.tobytes())
    disk = sum(p.stat().st_size for p in folder.glob("*.entries"))
    out = subprocess.run(
        [sys.executable, "-c", _LOAD_CHILD.format(root=str(ROOT), path=str(folder))],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    n, dt, nbytes, rss0, rss1, lookup = out.stdout.split()
    return {
        "entries": int(n),
        "load_s": float(dt),
        "disk_per_entry": disk / int(n),
        "mem_per_entry": int(nbytes) / int(n),
        "peak_rss_mib": int(rss1) / 1024,
        "rss_before_mib": int(rss0) / 1024,
        "lookup_us": float(lookup) * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=20_000)
    parser.add_argument("--synthetic", default="1000000,10000000")
    parser.add_argument("--skip-scenario", action="store_true")
    args = parser.parse_args()
    print(f"# bench_ledger {time.strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        work = Path(tmp)
        if not args.skip_scenario:
            r = _scenario(args.objects, work)
            n1, n2, b2 = r["night1"], r["night2"], r["baseline"]
            led = n2["summary"].get("ledger", {})
            print(
                fmt_table(
                    [
                        f"night 2 ({r['objects']} objects)",
                        "ledger",
                        "baseline: resume into one prefix",
                    ],
                    [
                        ["requests billed", n2["billed"], b2["billed"]],
                        ["new + changed (what must be billed)", r["expected"], r["expected"]],
                        [
                            "copies billed again",
                            n2["billed"] - r["expected"],
                            b2["billed"] - 2 * r["k"],
                        ],
                        ["overwritten images analysed", r["k"], 0],
                        [
                            "verdicts",
                            f"new {led.get('new')}, changed {led.get('changed')}, "
                            f"reused {led.get('reused')}, unchanged {led.get('unchanged')}",
                            "by id only",
                        ],
                        ["wall time", f"{n2['wall_s']:.1f} s", f"{b2['wall_s']:.1f} s"],
                        [
                            "wall time vs night 1 ({:.1f} s)".format(n1["wall_s"]),
                            f"{n2['wall_s'] / n1['wall_s']:.2f}x",
                            f"{b2['wall_s'] / n1['wall_s']:.2f}x",
                        ],
                        [
                            "output bytes read back",
                            f"{led.get('record_bytes_read', 0):,} (ranged reads for reuse)",
                            f"{r['shared_bytes']:,} ({r['shared_objects']} part files)",
                        ],
                        [
                            "ledger loaded",
                            f"{led.get('entries_loaded', 0):,} entries "
                            f"in {led.get('load_s', 0):.2f} s",
                            "-",
                        ],
                        [
                            "stale results kept",
                            0,
                            f"{r['stale']} overwritten images keep night 1's result",
                        ],
                    ],
                )
            )
            per_entry = r["ledger_bytes"] / max(1, r["ledger_entries"] + 0)
            print(
                f"\nledger after night 1: {r['ledger_bytes']:,} bytes in "
                f"{r['ledger_objects']} objects for {r['ledger_entries']:,} entries: "
                f"{per_entry:.1f} B/entry (entries and output tables)"
            )
        rows = []
        for size in [int(s) for s in args.synthetic.split(",") if s]:
            res = _synthetic(size, work / f"syn-{size}")
            rows.append(
                [
                    f"{res['entries']:,}",
                    f"{res['load_s']:.2f} s",
                    f"{res['disk_per_entry']:.1f}",
                    f"{res['mem_per_entry']:.1f}",
                    f"{res['peak_rss_mib']:.0f} MiB (start {res['rss_before_mib']:.0f})",
                    f"{res['lookup_us']:.2f} us",
                ]
            )
            print(f"# synthetic {size} done", flush=True)
        if rows:
            print()
            print(
                fmt_table(
                    [
                        "ledger entries",
                        "load",
                        "disk B/entry",
                        "memory B/entry",
                        "peak RSS",
                        "id lookup",
                    ],
                    rows,
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
