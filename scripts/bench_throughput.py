"""Benchmark "Run at the account's quota": batchrek's rate auto against boto3 + threads.

    .venv/bin/python scripts/bench_throughput.py [--images 3000] [--quota 100]

The emulator runs as its own process (``python -m batchrek emulator``, 127.0.0.1,
a free port) with a DetectLabels quota the clients are not told; each contender runs
in a fresh interpreter of its own (scripts/_benchlib.py). Distinct small JPEGs are
generated into a temporary folder and listed in a local-path ``.txt`` manifest.

1. At the quota (100 TPS, ~100 ms latency with 30 ms jitter, concurrency 64):
   batchrek (library, rate auto) and ThreadPoolExecutor(64) + one boto3 client with
   botocore retries "standard" and "adaptive". Goodput (ok images/s over the run) as
   a share of the quota, the throttled share of all requests (the emulator's count),
   images lost, batchrek's settled rate. Targets: >= 97 %, <= 1 %, 0 lost.
2. The quota drops to 50 TPS at t=15 s and returns to 100 at t=35 s (t=0: the first
   request): seconds until the per-second ok rate, read from the emulator's counters
   each second, stays within +-10 % of the new quota for 5 s.
2b. ``--shards`` (4) batchrek processes at once, shard i of 4 each, over the same
   images and the same unknown quota: goodput of the whole job, throttled share, and
   how far apart the shards end (on one clock from the first shard's start), per
   ``--shard-runs`` entry: lean and sdk, each with peers (notes beside the output) and
   without (the baseline); ``--shard-stagger S`` starts them S seconds apart in all.
   12,000 images: with fewer, the hash split alone leaves the shards uneven by more
   than 10 %. Targets: >= 95 %, <= 1 %, within 10 %.
3. No quota, 50 ms latency: images/s and client CPU per 1,000 images, batchrek vs the
   thread pool (target >= 1.2x), each run twice in alternating order (best of two:
   the machine is shared), then batchrek once under cProfile.

Every run is bounded in images and seconds; the whole script takes about 5.5 minutes
(7 with ``--drop-peer``, which adds boto3 "adaptive" to the drop run).
Compare the ratios within one run of this script, never absolute times.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _benchlib import (
    ChildReport,
    EmulatorProcess,
    api_requests,
    count_ok_records,
    fmt_table,
    make_images,
    run_child,
    sampling,
    write_txt_manifest,
)

THROTTLE = "ProvisionedThroughputExceededException"
SETTLE_BAND = 0.10
SETTLE_HOLD_S = 5
UNLIMITED_RATE = "100000"  # a fixed rate far above anything this machine can send


def _spec(
    kind: str, manifest: Path, out: Path, url: str, args: argparse.Namespace
) -> dict[str, Any]:
    if kind.startswith("pool"):
        mode = kind.split(":")[1]
        return {
            "manifest": str(manifest),
            "endpoint_url": url,
            "retry_mode": mode,
            "workers": args.concurrency,
            "max_s": args.max_run_s,
        }
    rate = UNLIMITED_RATE if kind == "batchrek:fixed" else "auto"
    return {
        "manifest": str(manifest),
        "output": str(out),
        "endpoint_url": url,
        "concurrency": args.concurrency,
        "rate": rate,
        "dedupe": False,
        "max_s": args.max_run_s,
    }


def _label(kind: str) -> str:
    return {
        "batchrek:auto": "batchrek rate auto",
        "batchrek:fixed": f"batchrek rate {UNLIMITED_RATE}",
        "pool:standard": "boto3 threads, retries standard",
        "pool:adaptive": "boto3 threads, retries adaptive",
    }[kind]


def _run(
    kind: str,
    emu: EmulatorProcess,
    manifest: Path,
    work: Path,
    args: argparse.Namespace,
    *,
    schedule: list[tuple[float, dict[str, Any]]] | None = None,
    profile: bool = False,
) -> dict[str, Any]:
    """One contender's run against a freshly reset emulator; the numbers it yields."""
    out = work / "out.jsonl"
    out.unlink(missing_ok=True)
    emu.reset()
    spec = _spec(kind, manifest, out, emu.url, args)
    if profile:
        spec |= {"profile": True, "profile_top": 15}
    emu_cpu0 = emu.cpu_s()
    with sampling(emu.control, schedule=schedule or []) as samples:
        child: ChildReport = run_child(kind.split(":")[0], spec, max_s=args.max_run_s)
        time.sleep(0.05)
    emu_cpu = emu.cpu_s() - emu_cpu0
    rep = child.report
    counts = api_requests(emu.control.stats())
    total_requests = sum(counts.values())
    if kind.startswith("batchrek"):
        ok, _records = count_ok_records(out)
        elapsed = float(rep["summary"]["elapsed_s"])
    else:
        ok = int(rep.get("ok", 0))
        elapsed = float(rep.get("run_wall_s", 0.0))
    return {
        "kind": kind,
        "ok": ok,
        "elapsed": elapsed,
        "goodput": ok / elapsed if elapsed else 0.0,
        "requests": total_requests,
        "throttled": counts.get(THROTTLE, 0),
        "cpu": float(rep.get("run_cpu_all_s", 0.0)),
        "emu_cpu": emu_cpu,
        "report": rep,
        "samples": list(samples),
        "rc": child.returncode,
    }


def _tl_rate(point: dict[str, Any]) -> float:
    return float((point.get("rate") or {}).get("detect_labels") or 0.0)


def _per_second(samples: list[dict[str, Any]], key: str) -> list[tuple[float, float]]:
    """(window start, events/s) for each window between consecutive samples."""
    rows = []
    for a, b in itertools.pairwise(samples):
        dt = b["t"] - a["t"]
        if dt > 0:
            rows.append((a["t"], (b.get(key, 0) - a.get(key, 0)) / dt))
    return rows


def _settle(series: list[tuple[float, float]], change_t: float, target: float) -> float | None:
    """Seconds from ``change_t`` to the first window after which the rate stays within
    the band for SETTLE_HOLD_S consecutive windows (None: it never did)."""
    after = [(t, r) for t, r in series if t >= change_t - 0.5]
    for i in range(len(after) - SETTLE_HOLD_S + 1):
        hold = after[i : i + SETTLE_HOLD_S]
        if all(abs(r - target) <= SETTLE_BAND * target for _, r in hold):
            return max(0.0, hold[0][0] - change_t)
    return None


def _sum_between(series: list[tuple[float, float]], start: float, end: float) -> float:
    return sum(r for t, r in series if start - 0.5 <= t < end - 0.5)


def _mean_between(series: list[tuple[float, float]], start: float, end: float) -> float | None:
    rates = [r for t, r in series if start - 0.5 <= t < end - 0.5]
    return sum(rates) / len(rates) if rates else None


def part_quota(
    emu: EmulatorProcess, manifest: Path, n: int, work: Path, args: argparse.Namespace
) -> list[dict[str, Any]]:
    runs = []
    for kind in ("batchrek:auto", "pool:standard", "pool:adaptive"):
        r = _run(kind, emu, manifest, work, args)
        runs.append(r)
        print(
            f"  {_label(kind)}: {r['ok']:,} ok in {r['elapsed']:.1f} s, "
            f"{r['requests']:,} requests, {r['throttled']:,} throttled",
            flush=True,
        )
    rows = []
    for r in runs:
        steady = _mean_between(_per_second(r["samples"], "ok"), 5.0, r["elapsed"] - 2.0)
        rep = r["report"]
        settled = ceiling = None
        if r["kind"].startswith("batchrek"):
            settled, ceiling = rep.get("rate"), rep.get("rate_ceiling")
        rows.append(
            [
                _label(r["kind"]),
                r["ok"],
                n - r["ok"],
                r["elapsed"],
                r["goodput"],
                f"{100 * r['goodput'] / args.quota:.1f}%",
                None if steady is None else f"{100 * steady / args.quota:.1f}%",
                r["requests"],
                f"{100 * r['throttled'] / max(1, r['requests']):.2f}%",
                settled,
                ceiling,
                1e6 * r["cpu"] / max(1, r["ok"]),
            ]
        )
    print()
    print(
        f"At the quota: {args.quota:g} TPS (not told to the clients), latency "
        f"{args.latency_ms:g} ms +- {args.jitter_ms:g} ms, concurrency {args.concurrency}, "
        f"{n:,} distinct images"
    )
    print(
        fmt_table(
            [
                "contender",
                "ok",
                "lost",
                "elapsed s",
                "ok/s",
                "of quota",
                "t>=5s",
                "requests",
                "throttled",
                "settled rate",
                "ceiling",
                "client cpu us/img",
            ],
            rows,
        )
    )
    print(
        "targets (batchrek): goodput >= 97% of the quota, throttled <= 1%, lost 0.  "
        "'of quota' is over the whole run (ramp-up included); 't>=5s' is the mean per-second "
        "ok rate from 5 s to 2 s before the end (emulator counters)."
    )
    b = runs[0]
    tl = b["report"].get("timeline", [])
    if tl:
        print(
            "batchrek timeline (rate = the metrics' settled rate; ok/s):  "
            + "  ".join(
                f"{p['t']:.0f}s:{_tl_rate(p):.0f}/{p['ok_per_s']:.0f}"
                for p in tl[:: max(1, len(tl) // 12)]
            )
        )
    return runs


def part_shards(
    emu: EmulatorProcess, manifest: Path, n: int, work: Path, args: argparse.Namespace
) -> None:
    """``--shards`` batchrek processes at once over one manifest, each with its shard
    index, sharing the emulator's quota as an Indexed Job's pods share an account's;
    once per ``--shard-runs`` entry (request path : peers), peers off (each shard
    finding its share from its own throttles) being the baseline."""
    import threading

    shards = args.shards
    out = work / "shards.jsonl"
    limit = max(args.max_run_s, 2 * n / args.quota)  # twice what the images take
    print(
        f"{shards} shards at once sharing one {args.quota:g} TPS quota (not told to them), "
        f"latency {args.latency_ms:g} ms +- {args.jitter_ms:g} ms, concurrency "
        f"{args.concurrency} each, {n:,} distinct images in all"
        + (f", starts spread over {args.shard_stagger:g} s" if args.shard_stagger else "")
    )
    for run in args.shard_runs.split(","):
        path, _, peers = run.partition(":")
        peers = peers or "auto"
        for old in work.glob("shards.shard-*.jsonl"):
            old.unlink()
        shutil.rmtree(work / "shards.peers", ignore_errors=True)
        emu.reset()
        reports: list[ChildReport | None] = [None] * shards
        starts = [i * args.shard_stagger / max(1, shards - 1) for i in range(shards)]

        def one(
            index: int,
            path: str = path,
            peers: str = peers,
            reports: list[Any] = reports,
            starts: list[float] = starts,
        ) -> None:
            # Pods of one Indexed Job start seconds apart: --shard-stagger spreads
            # the starts evenly over that many seconds.
            time.sleep(starts[index])
            spec = _spec("batchrek:auto", manifest, out, emu.url, args)
            spec |= {
                "shard_index": index,
                "shard_count": shards,
                "request_path": path,
                "peers": peers,
                "max_s": limit,
            }
            cpus = "0" if args.pin else None
            reports[index] = run_child("batchrek", spec, max_s=limit, cpus=cpus)

        with sampling(emu.control) as samples:
            threads = [threading.Thread(target=one, args=(i,)) for i in range(shards)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            time.sleep(0.05)
        counts = api_requests(emu.control.stats())
        requests = sum(counts.values())
        rows = []
        oks, elapsed, cpu = [], [], 0.0
        # On the job's clock: t=0 when the first shard's run began (after its
        # imports), each shard ending at its own start plus its run's elapsed time.
        began = [float(c.report.get("started_at", 0.0)) for c in reports if c is not None]
        t0 = min(began) if began else 0.0
        for i, child in enumerate(reports):
            assert child is not None
            name = f"shards.shard-{i:04d}-of-{shards:04d}.jsonl"
            ok, _ = count_ok_records(out.with_name(name))
            e = float(child.report.get("summary", {}).get("elapsed_s") or 0.0)
            start = float(child.report.get("started_at", t0)) - t0
            oks.append(ok)
            elapsed.append(start + e)
            cpu += float(child.report.get("run_cpu_all_s", 0.0))
            rate = child.report.get("rate")
            rows.append([f"shard {i}", ok, start, e, start + e, ok / e if e else 0.0, rate])
        job = max(elapsed) or 1.0
        total_ok = sum(oks)
        steady = _mean_between(_per_second(list(samples), "ok"), 5.0, job - 2.0)
        spread = (max(elapsed) - min(elapsed)) / job
        print()
        print(f"request_path = {path}, peers = {peers}:")
        heads = ["shard", "ok", "started s", "elapsed s", "ended s", "ok/s", "settled rate"]
        print(fmt_table(heads, rows))
        print(
            f"job: {total_ok:,} ok of {n:,} ({n - total_ok} lost) in {job:.1f} s = "
            f"{total_ok / job:.1f}/s = {100 * total_ok / job / args.quota:.1f}% of the quota "
            f"(t>=5s: {'-' if steady is None else f'{100 * steady / args.quota:.1f}%'}); "
            f"{requests:,} requests, {100 * counts.get(THROTTLE, 0) / max(1, requests):.2f}% "
            f"throttled; shards ended within {100 * spread:.1f}% of each other; "
            f"client CPU {1e6 * cpu / max(1, total_ok):.0f} us/image (4 processes)",
            flush=True,
        )
    print("targets: >= 95% of the quota, <= 1% throttled, shards ending within 10%")


def part_drop(
    emu: EmulatorProcess, manifest: Path, n: int, work: Path, args: argparse.Namespace
) -> None:
    low, high = args.quota / 2, args.quota
    schedule: list[tuple[float, dict[str, Any]]] = [
        (args.drop_at, {"quota_tps": low}),
        (args.rise_at, {"quota_tps": high}),
    ]
    rows = []
    series_lines = []
    kinds = ["batchrek:auto"] + (["pool:adaptive"] if args.drop_peer else [])
    for kind in kinds:
        r = _run(kind, emu, manifest, work, args, schedule=schedule)
        emu.control.configure(quota_tps=high)
        ok_s = _per_second(r["samples"], "ok")
        thr_s = _per_second(r["samples"], THROTTLE)
        end = ok_s[-1][0] if ok_s else 0.0
        rows.append(
            [
                _label(kind),
                r["ok"],
                n - r["ok"],
                r["elapsed"],
                _mean_between(ok_s, 5.0, args.drop_at),
                _settle(ok_s, args.drop_at, low),
                _sum_between(thr_s, args.drop_at, args.drop_at + 5),
                _mean_between(ok_s, args.drop_at + 5, args.rise_at),
                _sum_between(thr_s, args.drop_at + 5, args.rise_at),
                _settle(ok_s, args.rise_at, high),
                _mean_between(ok_s, args.rise_at + 5, end),
                f"{100 * r['throttled'] / max(1, r['requests']):.2f}%",
            ]
        )
        series_lines.append(
            f"  {_label(kind)} ok/s by second: " + " ".join(f"{v:.0f}" for _, v in ok_s)
        )
        series_lines.append(
            f"  {_label(kind)} throttled/s:    " + " ".join(f"{v:.0f}" for _, v in thr_s)
        )
        print(f"  {_label(kind)}: {r['ok']:,} ok in {r['elapsed']:.1f} s", flush=True)
    print()
    print(
        f"Quota drop: {high:g} TPS -> {low:g} at t={args.drop_at:g} s -> {high:g} at "
        f"t={args.rise_at:g} s (t=0: first request), {n:,} images; settle = seconds until "
        f"the per-second ok rate stays within +-{SETTLE_BAND:.0%} of the new quota for "
        f"{SETTLE_HOLD_S} s ('-': never)"
    )
    print(
        fmt_table(
            [
                "contender",
                "ok",
                "lost",
                "elapsed s",
                "ok/s before",
                "settle drop s",
                "thr 5s after drop",
                "ok/s low",
                "thr low",
                "settle rise s",
                "ok/s after",
                "throttled",
            ],
            rows,
        )
    )
    for line in series_lines:
        print(line)


def part_unlimited(
    emu: EmulatorProcess, manifest: Path, n: int, work: Path, args: argparse.Namespace
) -> None:
    order = ["batchrek:auto", "batchrek:fixed", "pool:standard"]
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in order}
    for repeat in range(args.repeats):
        for kind in order if repeat % 2 == 0 else order[::-1]:
            r = _run(kind, emu, manifest, work, args)
            runs[kind].append(r)
            print(
                f"  {_label(kind)}: {r['ok']:,} ok in {r['elapsed']:.1f} s, "
                f"cpu {r['cpu']:.2f} s, emulator cpu {r['emu_cpu']:.2f} s",
                flush=True,
            )
    best = {k: max(v, key=lambda r: r["goodput"]) for k, v in runs.items()}
    pool = best["pool:standard"]
    rows = []
    for kind in order:
        b = best[kind]
        cpu_per_k = min(r["cpu"] / max(1, r["ok"]) * 1000 for r in runs[kind])
        pool_cpu_per_k = min(r["cpu"] / max(1, r["ok"]) * 1000 for r in runs["pool:standard"])
        rows.append(
            [
                _label(kind),
                b["ok"],
                b["elapsed"],
                b["goodput"],
                f"{b['goodput'] / pool['goodput']:.2f}x",
                " / ".join(f"{r['goodput']:.0f}" for r in runs[kind]),
                cpu_per_k,
                f"{cpu_per_k / pool_cpu_per_k:.2f}x",
                min(r["emu_cpu"] / max(1, r["ok"]) * 1000 for r in runs[kind]),
            ]
        )
    print()
    print(
        f"No quota, latency {args.unlimited_latency_ms:g} ms, concurrency {args.concurrency}, "
        f"{n:,} distinct images; best of {args.repeats} alternating runs "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    print(
        fmt_table(
            [
                "contender",
                "ok",
                "elapsed s",
                "images/s",
                "vs threads",
                "each run img/s",
                "client cpu s/1k img",
                "cpu vs threads",
                "emulator cpu s/1k",
            ],
            rows,
        )
    )
    print("target: batchrek images/s >= 1.2x the thread pool")
    print()
    print(f"cProfile of batchrek (rate {UNLIMITED_RATE}, same images; the event-loop thread):")
    r = _run("batchrek:fixed", emu, manifest, work, args, profile=True)
    print(f"  (profiled run: {r['ok']:,} ok in {r['elapsed']:.1f} s; profiling slows it)")
    print(r["report"].get("profile", "(no profile)"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=3000, help="images per run at the quota")
    p.add_argument("--drop-images", type=int, default=4500, help="images for the drop run")
    p.add_argument("--quota", type=float, default=100.0, help="the emulator's TPS quota")
    p.add_argument("--latency-ms", type=float, default=100.0)
    p.add_argument("--jitter-ms", type=float, default=30.0)
    p.add_argument("--unlimited-latency-ms", type=float, default=50.0)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--drop-at", type=float, default=15.0)
    p.add_argument("--rise-at", type=float, default=35.0)
    p.add_argument("--repeats", type=int, default=2, help="no-quota runs per contender")
    p.add_argument("--max-run-s", type=float, default=90.0, help="time bound of one run")
    p.add_argument("--drop-peer", action="store_true", help="drop run: also boto3 adaptive (+95 s)")
    p.add_argument("--shards", type=int, default=4, help="shard processes sharing the quota")
    p.add_argument("--shard-images", type=int, default=12_000, help="images for the shard run")
    p.add_argument(
        "--shard-stagger", type=float, default=0.0, help="seconds over which shard starts spread"
    )
    p.add_argument(
        "--shard-runs",
        default="lean:auto,lean:off,sdk:auto,sdk:off",
        help="shard runs as request_path:peers (peers off: each shard alone, the baseline)",
    )
    p.add_argument(
        "--pin", action="store_true", help="emulator on CPU 1; the shard processes on CPU 0"
    )
    p.add_argument("--skip", default="", help="comma list of parts to skip: quota,shards,drop,free")
    args = p.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    try:
        wanted = max(args.images, args.drop_images)
        if "shards" not in skip:
            wanted = max(wanted, args.shard_images)
        images = make_images(work / "img", wanted)
        quota_manifest = write_txt_manifest(work / "quota.txt", images[: args.images])
        drop_manifest = write_txt_manifest(work / "drop.txt", images[: args.drop_images])
        print(
            f"{len(images):,} distinct JPEGs ({min(os.path.getsize(i) for i in images):,}-"
            f"{max(os.path.getsize(i) for i in images):,} bytes) made in "
            f"{time.perf_counter() - started:.1f} s; load average {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} CPUs",
            flush=True,
        )
        with EmulatorProcess(
            quota_tps=args.quota,
            latency_ms=args.latency_ms,
            jitter_ms=args.jitter_ms,
            log=work / "emulator.log",
            cpus="1" if args.pin else None,
        ) as emu:
            print(f"emulator {emu.url} (pid {emu.proc.pid})", flush=True)
            if "quota" not in skip:
                part_quota(emu, quota_manifest, args.images, work, args)
            if "shards" not in skip and args.shards > 1:
                print(flush=True)
                shard_manifest = write_txt_manifest(
                    work / "shards.txt", images[: args.shard_images]
                )
                part_shards(emu, shard_manifest, args.shard_images, work, args)
            if "drop" not in skip:
                print(flush=True)
                part_drop(emu, drop_manifest, args.drop_images, work, args)
            if "free" not in skip:
                print(flush=True)
                emu.control.configure(
                    quota_tps=None, latency_ms=args.unlimited_latency_ms, latency_jitter_ms=0.0
                )
                part_unlimited(emu, quota_manifest, args.images, work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
