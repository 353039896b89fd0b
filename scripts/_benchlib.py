"""Shared helpers for scripts/bench_throughput.py and scripts/bench_pipeline.py.

Every contender runs in a fresh interpreter of its own, so its CPU time and peak RSS
are its own, and the emulator runs in a third process, so neither shares a GIL with
it. The parent only orchestrates: it starts the emulator, steers it through its
control endpoints, and reads each child's JSON report and ``wait4`` rusage.

    parent ──Popen──▶ python -m batchrek emulator --port 0 ...   (127.0.0.1 only)
           ──Popen──▶ python scripts/_benchlib.py batchrek '<json>'   run_batch, report
           ──Popen──▶ python scripts/_benchlib.py pool '<json>'       boto3 + threads, report

Children are bounded in items (the manifest) and in time (``max_s``: batchrek is
stopped through ``run_batch(stop=...)``, the pool skips what is left), and the
parent kills a child that outlives ``max_s`` by a margin.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # last: a PYTHONPATH copy of batchrek (an A/B) wins

from batchrek.emulator import EmulatorControl  # noqa: E402  (needs ROOT on sys.path)

__all__ = [
    "CHILD_ENV",
    "ROOT",
    "ChildReport",
    "EmulatorProcess",
    "api_requests",
    "count_ok_records",
    "fmt_table",
    "make_images",
    "pinned",
    "run_child",
    "write_jsonl_manifest",
    "write_txt_manifest",
]

OPERATION = "DetectLabels"
# Fake credentials: the emulator wants a SigV4 header, not a valid signature. No IMDS
# look-ups, no proxies, no user config files: the run must not leave the machine.
CHILD_ENV: Mapping[str, str] = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
    "PYTHONPATH": str(ROOT),
    "PYTHONHASHSEED": "0",
}


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BATCHREK_"))}
    env.update(CHILD_ENV)
    return env


# -- the emulator, in its own process ------------------------------------------------


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class EmulatorProcess:
    """``python -m batchrek emulator`` on a free 127.0.0.1 port, stopped on exit."""

    def __init__(
        self,
        *,
        quota_tps: float | None = None,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        seed: int = 1,
        s3_endpoint_url: str | None = None,
        log: Path,
        cpus: str | None = None,
    ) -> None:
        args = [
            *pinned(cpus),
            sys.executable,
            "-m",
            "batchrek",
            "emulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--latency-ms",
            str(latency_ms),
            "--latency-jitter-ms",
            str(jitter_ms),
            "--seed",
            str(seed),
        ]
        if quota_tps is not None:
            args += ["--quota-tps", str(quota_tps)]
        if s3_endpoint_url is not None:
            args += ["--s3-endpoint-url", s3_endpoint_url]
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self._log, env=_child_env(), cwd=ROOT
        )
        self.url = self._read_url()
        self.control = EmulatorControl(self.url)
        self.control.settings()  # answers: it is serving

    def _read_url(self) -> str:
        assert self.proc.stdout is not None
        found: list[str] = []
        reader = threading.Thread(
            target=lambda: found.append(self.proc.stdout.readline().decode().strip()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(30)
        if not found or not found[0].startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"emulator did not start (see {self._log.name})")
        return found[0]

    def cpu_s(self) -> float:
        return _proc_cpu_s(self.proc.pid)

    def reset(self, **settings: Any) -> None:
        """Forget stats and caches, then apply ``settings`` (e.g. quota_tps=None)."""
        self.control.reset()
        if settings:
            self.control.configure(**settings)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pinned(cpus: str | None) -> list[str]:
    """The ``taskset -c CPUS`` prefix that pins a command to those cores (none: [])."""
    if not cpus:
        return []
    if shutil.which("taskset") is None:
        raise RuntimeError("taskset (util-linux) is needed to pin processes to cores")
    return ["taskset", "-c", cpus]


def api_requests(stats: Mapping[str, Any]) -> dict[str, int]:
    """DetectLabels requests by outcome ("ok", an error code, "dropped")."""
    found: dict[str, int] = dict(stats.get("requests", {}).get(OPERATION, {}))
    return found


# -- images and manifests --------------------------------------------------------------


def _image_batch(folder: str, first: int, count: int, seed: int) -> list[str]:
    from batchrek.testing import corpus

    paths = []
    for i in range(first, first + count):
        rng = random.Random(seed * 1_000_003 + i)
        # Distinct sizes (160-209 x 120-179) and boxes: every file is a new image.
        width, height = 160 + i % 50, 120 + (i // 50) % 60
        left, top = 0.1 + rng.random() * 0.3, 0.1 + rng.random() * 0.3
        box = (left, top, left + 0.2 + rng.random() * 0.3, top + 0.2 + rng.random() * 0.3)
        path = os.path.join(folder, f"img-{i:06d}.jpg")
        with open(path, "wb") as fh:
            fh.write(corpus.photo(width, height, box=box, quality=85))
        paths.append(path)
    return paths


def make_images(folder: Path, count: int, *, seed: int = 7) -> list[str]:
    """``count`` distinct small JPEGs in ``folder`` (two processes: ~2 ms each)."""
    folder.mkdir(parents=True, exist_ok=True)
    chunk = 500
    with ProcessPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(_image_batch, str(folder), start, min(chunk, count - start), seed)
            for start in range(0, count, chunk)
        ]
        return [p for f in futures for p in f.result()]


def write_txt_manifest(path: Path, images: Sequence[str]) -> Path:
    path.write_text("".join(f"{p}\n" for p in images))
    return path


def write_jsonl_manifest(path: Path, images: Sequence[str], lines: int) -> Path:
    """``lines`` items with distinct ids that cycle through ``images``."""
    with path.open("w") as fh:
        for n in range(lines):
            fh.write(json.dumps({"id": f"item-{n:07d}", "image": images[n % len(images)]}))
            fh.write("\n")
    return path


def count_ok_records(output: Path) -> tuple[int, int]:
    """(distinct ids with an ok record, records) in a batchrek JSONL output."""
    import orjson

    ok: set[str] = set()
    records = 0
    if not output.exists():
        return 0, 0
    with output.open("rb") as fh:
        for line in fh:
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            records += 1
            if rec.get("status") == "ok":
                ok.add(rec["id"])
    return len(ok), records


# -- running a child and reading its report ------------------------------------------------


@dataclass
class ChildReport:
    """What a child said about itself, plus the kernel's word on its resources."""

    report: dict[str, Any]
    wall_s: float
    maxrss_mib: float  # the child's peak RSS (wait4), with interpreter and imports
    cpu_s: float  # the child's whole user + system CPU (wait4), imports included
    returncode: int
    stderr_tail: str = ""
    samples: list[dict[str, Any]] = field(default_factory=list)


def run_child(
    kind: str,
    spec: Mapping[str, Any],
    *,
    max_s: float,
    on_start: Any = None,
    cpus: str | None = None,
) -> ChildReport:
    """Run ``_benchlib.py <kind> <spec>`` to the end; kill it ``max_s + 30`` s in.

    ``on_start()`` runs in the parent once the child is started (e.g. a sampler); it
    may return a callable that is called with no arguments when the child ends.
    ``cpus`` pins the child (``taskset -c``), threads and subprocesses included.
    """
    cmd = [
        *pinned(cpus),
        sys.executable,
        str(Path(__file__).resolve()),
        kind,
        json.dumps(dict(spec)),
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_child_env(),
        cwd=ROOT,
    )
    finish = on_start() if on_start is not None else None
    killer = threading.Timer(max_s + 30, proc.kill)
    killer.start()
    out: list[bytes] = []
    err: list[bytes] = []
    readers = [
        threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True),  # type: ignore[union-attr]
        threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True),  # type: ignore[union-attr]
    ]
    for r in readers:
        r.start()
    for r in readers:
        r.join()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    killer.cancel()
    wall = time.perf_counter() - started
    if finish is not None:
        finish()
    text = (out[0] if out else b"").decode(errors="replace").strip().splitlines()
    stderr = (err[0] if err else b"").decode(errors="replace")
    try:
        report: dict[str, Any] = json.loads(text[-1]) if text else {}
    except json.JSONDecodeError:
        report = {}
    if proc.returncode != 0 or not report:
        print(f"!! child {kind} exited {proc.returncode}:\n{stderr[-3000:]}", file=sys.stderr)
    return ChildReport(
        report=report,
        wall_s=wall,
        maxrss_mib=usage.ru_maxrss / 1024,
        cpu_s=usage.ru_utime + usage.ru_stime,
        returncode=proc.returncode,
        stderr_tail=stderr[-2000:],
    )


@contextmanager
def sampling(
    control: EmulatorControl,
    *,
    period_s: float = 1.0,
    schedule: Sequence[tuple[float, dict[str, Any]]] = (),
) -> Iterator[list[dict[str, Any]]]:
    """Sample the emulator's counters every ``period_s`` in a thread.

    The clock starts at the first DetectLabels request; ``schedule`` holds
    ``(t, settings)`` changes applied at those times (right after that sample).
    """
    samples: list[dict[str, Any]] = []
    stop = threading.Event()
    pending = sorted(schedule, key=lambda s: s[0])

    def loop() -> None:
        t0: float | None = None
        while not stop.is_set():
            now = time.monotonic()
            counts = api_requests(control.stats())
            if t0 is None:
                if not sum(counts.values()):
                    stop.wait(0.02)
                    continue
                t0 = now
            t = now - t0
            samples.append({"t": t, **counts})
            while pending and t >= pending[0][0] - 1e-3:
                control.configure(**pending.pop(0)[1])
            stop.wait(max(0.0, t0 + len(samples) * period_s - time.monotonic()))

    thread = threading.Thread(target=loop, name="emulator-sampler", daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(10)


def fmt_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in header], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# -- the children ------------------------------------------------------------------------------


def _self_usage() -> dict[str, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "cpu_s": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
        "maxrss_mib": me.ru_maxrss / 1024,
    }


class _Measured:
    """Around a child's run: its wall time, this process's CPU, and the CPU of the
    process and its children (the fields every child reports)."""

    def __enter__(self) -> _Measured:
        self._before = _self_usage()
        self._t0, self._c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._t0
        self.cpu = time.process_time() - self._c0
        self._after = _self_usage()

    def report(self) -> dict[str, float]:
        return {
            "run_wall_s": self.wall,
            "run_cpu_s": self.cpu,
            "run_cpu_all_s": self._after["cpu_s"] - self._before["cpu_s"],
            "maxrss_mib": self._after["maxrss_mib"],
        }


def _count_error(errors: dict[str, int], exc: BaseException) -> None:
    """One failed call, counted by its AWS error code (or its exception type)."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    key = code or type(exc).__name__
    errors[key] = errors.get(key, 0) + 1


def _child_batchrek(spec: dict[str, Any]) -> dict[str, Any]:
    """batchrek through the library: ``load_settings`` then ``run_batch``."""
    import anyio

    from batchrek import RunOutcome, run_batch
    from batchrek.config import load_settings

    flags = {
        "manifest": spec["manifest"],
        "output": spec["output"],
        "endpoint_url": spec["endpoint_url"],
        "region": "us-east-1",
        "concurrency": spec.get("concurrency", 64),
        "rate": spec.get("rate", "auto"),
        "dedupe": spec.get("dedupe", True),
        "request_path": spec.get("request_path", "lean"),
        "peers": spec.get("peers", "auto"),
        "resume": False,
        "progress": False,
        "log_interval_s": 3600.0,
        "grace_period_s": 5.0,
    }
    if spec.get("shard_count"):
        flags |= {"shard_index": spec["shard_index"], "shard_count": spec["shard_count"]}
    settings = load_settings(flags, environ={})
    max_s = float(spec["max_s"])

    async def main() -> RunOutcome:
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:

            async def deadline() -> None:
                await anyio.sleep(max_s)
                stop.set()

            tg.start_soon(deadline)
            outcome = await run_batch(settings, stop=stop)
            tg.cancel_scope.cancel()
        return outcome

    t0_wall = time.time()
    profile_text = ""
    with _Measured() as measured:
        if spec.get("profile"):
            import cProfile

            prof = cProfile.Profile()
            outcome = prof.runcall(anyio.run, main)
        else:
            outcome = anyio.run(main)
    if spec.get("profile"):
        import io
        import pstats

        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf).strip_dirs()
        top = int(spec.get("profile_top", 15))
        buf.write("== by cumulative time ==\n")
        stats.sort_stats("cumulative").print_stats(top)
        buf.write("== by own (self) time ==\n")
        stats.sort_stats("tottime").print_stats(top)
        profile_text = buf.getvalue()
    s = outcome.summary
    op = s["by_operation"].get("detect_labels", {})
    return {
        **measured.report(),
        "started_at": t0_wall,
        "ended_at": time.time(),
        "interrupted": outcome.interrupted,
        "summary": {
            k: s.get(k)
            for k in (
                "items",
                "ok",
                "failed",
                "requests",
                "retries",
                "throttled",
                "elapsed_s",
                "throughput_per_s",
                "concurrency",
                "failed_by_code",
                "cpu_s",
            )
        },
        "rate": op.get("rate"),
        "rate_ceiling": op.get("rate_ceiling"),
        "timeline": s.get("timeline", []),
        "verdict": s.get("verdict"),
        "profile": profile_text,
    }


def _read_items(manifest: str) -> list[tuple[str, str]]:
    """(id, path) per line of a .txt or .jsonl ({"id", "image"}) manifest."""
    items: list[tuple[str, str]] = []
    with open(manifest) as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            if line.startswith("{"):
                rec = json.loads(line)
                items.append((rec["id"], rec["image"]))
            else:
                items.append((line, line))
    return items


def _child_aioloop(spec: dict[str, Any]) -> dict[str, Any]:
    """The smallest fast async client: one aiobotocore client (pool sized to the
    workers, botocore retries off, User-Agent as built), ``workers`` tasks pulling
    paths from one iterator, each file read with a plain ``open``, responses dropped.
    No rate limit, retries, records or resume: a floor for the SDK path's CPU."""
    import asyncio

    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    workers = int(spec.get("workers", 64))
    items = _read_items(spec["manifest"])
    deadline = time.monotonic() + float(spec["max_s"])
    errors: dict[str, int] = {}
    ok = 0

    async def main() -> None:
        nonlocal ok
        config = AioConfig(
            max_pool_connections=workers,
            retries={"mode": "standard", "total_max_attempts": 1},
            parameter_validation=False,
        )
        async with get_session().create_client(
            "rekognition",
            region_name="us-east-1",
            endpoint_url=spec["endpoint_url"],
            config=config,
        ) as client:
            todo = iter(items)

            async def worker() -> None:
                nonlocal ok
                for _item_id, path in todo:
                    if time.monotonic() > deadline:
                        return
                    # A blocking read on purpose: the minimal loop (small local files).
                    with open(path, "rb") as f:  # noqa: ASYNC230
                        data = f.read()
                    try:
                        await client.detect_labels(Image={"Bytes": data})
                        ok += 1
                    except Exception as exc:
                        _count_error(errors, exc)

            await asyncio.gather(*(worker() for _ in range(workers)))

    with _Measured() as measured:
        asyncio.run(main())
    return {
        **measured.report(),
        "items": len(items),
        "ok": ok,
        "failed": sum(errors.values()),
        "failed_by_code": errors,
    }


def _child_pool(spec: dict[str, Any]) -> dict[str, Any]:
    """The way users usually write it: one boto3 client, a ThreadPoolExecutor, a list."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    import boto3
    from botocore.config import Config

    workers = int(spec.get("workers", 64))
    items = _read_items(spec["manifest"])
    client = boto3.client(
        "rekognition",
        region_name="us-east-1",
        endpoint_url=spec["endpoint_url"],
        config=Config(
            retries={"mode": spec.get("retry_mode", "standard")}, max_pool_connections=workers
        ),
    )
    deadline = time.monotonic() + float(spec["max_s"])

    def analyse(path: str) -> dict[str, Any]:
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark time bound reached; not sent")
        with open(path, "rb") as f:
            data = f.read()
        response: dict[str, Any] = client.detect_labels(Image={"Bytes": data})
        return response

    results: list[dict[str, Any]] = []
    errors: dict[str, int] = {}
    with _Measured() as measured, ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(analyse, path): item_id for item_id, path in items}
        for future in as_completed(futures):
            try:
                results.append({"id": futures[future], "response": future.result()})
            except Exception as exc:
                _count_error(errors, exc)
    return {
        **measured.report(),
        "items": len(items),
        "ok": len(results),
        "failed": sum(errors.values()),
        "failed_by_code": errors,
    }


def _child_main(argv: Sequence[str]) -> int:
    kind, spec = argv[0], json.loads(argv[1])
    children = {"batchrek": _child_batchrek, "pool": _child_pool, "aioloop": _child_aioloop}
    report = children[kind](spec)
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
