"""Benchmark: batchrek's transcoder against the obvious Pillow loop, side by side.

    .venv/bin/python scripts/bench_imaging.py [--images 4] [--rounds 2]

Prints four tables: per-core speed and output of each method on 24 MP camera-like
JPEGs made to fit 5 MiB; threads against a process pool; the event loop's worst
scheduling delay while ImagePool transcodes; peak RSS with 64 big images in flight
(measured in a child process, from /proc/self/status VmHWM).

Per-core speed is images per second of *thread CPU time*, so other load on the machine
does not skew it; wall-clock figures are printed next to it.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anyio
import PIL
from PIL import Image, ImageOps
from PIL import _imaging as pillow_core

from batchrek.limits import ImageLimits, limits_for
from batchrek.prepare import ImagePool, imaging, usable_cores
from batchrek.testing import corpus

LIMITS = limits_for("detect_labels")
ORIENTATIONS = (1, 6, 1, 8, 3, 1)  # camera-like: some portrait shots


@dataclass(frozen=True)
class Output:
    data: bytes
    width: int
    height: int
    quality: int


def baseline(data: bytes, limits: ImageLimits) -> Output:
    """The obvious loop: upright, thumbnail to fit, save at 85, shrink 10% until it fits."""
    im = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    bound = min(limits.max_side, max(im.size))
    while True:
        im.thumbnail((bound, bound))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=85)
        if buf.tell() <= limits.bytes_cap:
            return Output(buf.getvalue(), im.width, im.height, 85)
        bound = int(bound * 0.9)


def batchrek_with(qualities: tuple[int, ...]) -> Callable[[bytes, ImageLimits], Output]:
    def run(data: bytes, limits: ImageLimits) -> Output:
        header = imaging.inspect(data)
        out = imaging.transcode(data, header, limits, qualities=qualities)
        return Output(out.data, out.sent.width, out.sent.height, _quality(out.data))

    return run


def _quality(data: bytes) -> int:
    """The JPEG quality, recovered from the first quantisation table (IJG scaling)."""
    im = Image.open(io.BytesIO(data))
    tables = getattr(im, "quantization", None)
    if not tables:
        return 0
    base = [16, 11, 10, 16, 24, 40, 51, 61]  # IJG luminance table, first row (zigzag)
    first = int(tables[0][0])
    scale = first * 100 / base[0]
    return round(100 - scale / 2) if scale <= 100 else round(5000 / scale)


def make_images(count: int) -> list[bytes]:
    return [
        corpus.noisy_photo(6000, 4000, orientation=ORIENTATIONS[i % len(ORIENTATIONS)])
        for i in range(count)
    ]


# ------------------------------------------------------------------ 1. per core


def per_core(images: list[bytes], rounds: int) -> None:
    methods: dict[str, Callable[[bytes, ImageLimits], Output]] = {
        "baseline (thumbnail, q85, -10%/try)": baseline,
        "batchrek (q 90/85/80/75, then scale)": batchrek_with(imaging.QUALITIES),
        "batchrek, floor q80 (90/85/80)": batchrek_with((90, 85, 80)),
    }
    cpu: dict[str, list[float]] = {m: [] for m in methods}
    wall: dict[str, list[float]] = {m: [] for m in methods}
    outs: dict[str, list[Output]] = {m: [] for m in methods}
    for _ in range(rounds):
        for data in images:  # interleaved, so drift on a shared machine hits all alike
            for name, method in methods.items():
                c0, w0 = time.thread_time(), time.perf_counter()
                out = method(data, LIMITS)
                cpu[name].append(time.thread_time() - c0)
                wall[name].append(time.perf_counter() - w0)
                outs[name].append(out)
    base_rate = len(cpu["baseline (thumbnail, q85, -10%/try)"]) / sum(
        cpu["baseline (thumbnail, q85, -10%/try)"]
    )
    print(f"\n1. One core, {len(images)} x 24 MP noisy JPEGs x {rounds} rounds, to fit 5 MiB")
    print(
        f"{'method':38} {'img/s/core':>10} {'x base':>7} {'wall s/img':>10} "
        f"{'output px (mean)':>17} {'MP':>5} {'MB':>5} {'q':>3} {'max bytes':>10}"
    )
    for name in methods:
        rate = len(cpu[name]) / sum(cpu[name])
        o = outs[name]
        w = statistics.mean(x.width * x.height for x in o) / 1e6
        mb = statistics.mean(len(x.data) for x in o) / 1e6
        dims = max(((x.width, x.height) for x in o), key=lambda d: d[0] * d[1])
        print(
            f"{name:38} {rate:10.2f} {rate / base_rate:6.2f}x {statistics.mean(wall[name]):10.3f} "
            f"{dims[0]:>8}x{dims[1]:<8} {w:5.1f} {mb:5.2f} "
            f"{statistics.mode(x.quality for x in o):3d} {max(len(x.data) for x in o):10,}"
        )


# ------------------------------------------------- 2/3. threads, processes, the loop


async def _ticker(stop: anyio.Event, delays: list[float]) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        await anyio.sleep(0.010)
        delays.append(time.perf_counter() - t0 - 0.010)


async def _with_ticker(work: Callable[[], object]) -> tuple[float, list[float]]:
    delays: list[float] = []
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_ticker, stop, delays)
        t0 = time.perf_counter()
        await work()  # type: ignore[misc]
        elapsed = time.perf_counter() - t0
        stop.set()
    return elapsed, delays


async def _through(pool: ImagePool, jobs: list[tuple[bytes, imaging.ImageHeader]]) -> None:
    async with anyio.create_task_group() as tg:
        for data, header in jobs:
            tg.start_soon(partial(pool.transcode, data, header, LIMITS))


async def _measure(
    processes: bool, jobs: list[tuple[bytes, imaging.ImageHeader]], workers: int
) -> tuple[float, list[float]]:
    async with ImagePool(max_decodes=workers, processes=processes) as pool:
        await _through(pool, jobs[:workers])  # warm-up: workers started, memory touched
        return await _with_ticker(partial(_through, pool, jobs))


def threads_vs_processes(images: list[bytes], per_worker: int) -> None:
    workers = min(2, usable_cores())
    jobs = [(d, imaging.inspect(d)) for d in images]
    jobs = (jobs * (1 + workers * per_worker // len(jobs)))[: workers * per_worker]
    rows: list[tuple[str, float, list[float]]] = []

    for processes in (False, True):
        elapsed, delays = anyio.run(_measure, processes, jobs, workers)
        kind = "processes" if processes else "threads"
        rows.append((f"ImagePool, {workers} {kind}", elapsed, delays))

    ctx = multiprocessing.get_context("forkserver")
    t0 = time.perf_counter()
    for _ in range(20):
        ctx.reducer.ForkingPickler.dumps(jobs[0][0])  # type: ignore[attr-defined]
    pickle_ms = (time.perf_counter() - t0) / 20 * 1000

    print(f"\n2+3. {len(jobs)} transcodes on {workers} workers; a 10 ms ticker on the event loop")
    print(
        f"{'executor':40} {'img/s':>6} {'img/s/core':>10} {'tick delay max':>15} "
        f"{'p99':>7} {'ticks':>6}"
    )
    for name, elapsed, delays in rows:
        rate = len(jobs) / elapsed
        p99 = statistics.quantiles(delays, n=100)[98] if len(delays) > 2 else max(delays)
        print(
            f"{name:40} {rate:6.2f} {rate / workers:10.2f} {max(delays) * 1000:12.1f} ms "
            f"{p99 * 1000:5.1f} ms {len(delays):6}"
        )
    print(f"(pickling one {len(jobs[0][0]) / 1e6:.1f} MB input for a process: {pickle_ms:.1f} ms)")


# -------------------------------------------------------------- 4. peak memory


def _status_kb(field: str, pid: int | str = "self") -> int:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _descendants() -> list[int]:
    """Our worker processes (the forkserver's children included), from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [os.getpid()]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        found += children
        frontier += children
    return found


async def _flight(images: list[bytes], count: int, decodes: int) -> None:
    async with ImagePool(max_decodes=decodes) as pool:
        headers = [await pool.inspect(d) for d in images]
        before = _status_kb("VmRSS")
        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(count):  # all started at once: count images in flight
                k = i % len(images)
                tg.start_soon(partial(pool.transcode, images[k], headers[k], LIMITS))
        elapsed = time.perf_counter() - t0
        workers = _descendants()
        peak = _status_kb("VmHWM") + sum(_status_kb("VmHWM", pid) for pid in workers)
    print(f"{before / 1024:.0f} {peak / 1024:.0f} {elapsed:.1f} {len(workers)}")


def peak_rss(images: list[bytes], count: int) -> None:
    print(f"\n4. Peak RSS, {count} x 24 MP images in flight at once (child process)")
    print("(peak = VmHWM of the parent + every worker process: an upper bound)")
    print(f"{'ImagePool':28} {'RSS before':>11} {'peak RSS':>9} {'wall':>6} {'procs':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, data in enumerate(images):
            path = Path(tmp) / f"img{i}.jpg"
            path.write_bytes(data)
            paths.append(str(path))
        for decodes in (usable_cores(), 4 * usable_cores()):
            cmd = [sys.executable, __file__, "--child", str(count), str(decodes), *paths]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
            before, peak, wall, procs = out[-4:]
            label = f"max_decodes={decodes}" + (" (default)" if decodes == usable_cores() else "")
            print(f"{label:28} {before:>8} MB {peak:>6} MB {wall:>5}s {procs:>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        count, decodes, *paths = args.child
        images = [Path(p).read_bytes() for p in paths]
        anyio.run(_flight, images, int(count), int(decodes))
        return
    started = time.perf_counter()
    pillow_core.set_blocks_max(16)  # as ImagePool's workers do; both methods benefit
    images = make_images(args.images)
    sizes = ", ".join(f"{len(d) / 1e6:.1f}" for d in images)
    print(f"Pillow {PIL.__version__}, {usable_cores()} usable cores, {os.cpu_count()} on host")
    print(
        f"inputs: {args.images} x 6000x4000 noisy JPEG q95, MB: {sizes} (made in "
        f"{time.perf_counter() - started:.1f}s)"
    )
    per_core(images, args.rounds)
    threads_vs_processes(images, per_worker=4)
    peak_rss(images, args.in_flight)
    print(f"\ntotal {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
