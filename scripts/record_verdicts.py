"""Record the verdict scenarios: real runs against the emulator, their --metrics-out
kept as test fixtures (tests/observe/scenarios/*.json) for tests/observe/test_verdict.py.

Each scenario is a real `batchrek run` in its own process (so its process CPU is its
own) against `batchrek emulator` in another, on 127.0.0.1:

    quota         --quota-tps 40, 50 ms latency, --rate auto: the quota is found
    concurrency   400 ms latency, --concurrency 4, --rate 1000: in flight at the cap
    ramping       no quota, 50 ms latency, --rate auto, ~12 s: still searching
    preparation   WebP images (each one transcoded), no latency, --concurrency 4
    source        the manifest arrives slowly through a FIFO
    cpu           no latency, no quota, --rate 100000, --concurrency 64
    too_short     20 images

    .venv/bin/python scripts/record_verdicts.py [NAME ...]

Paths under the scratch folder are written as <tmp> in the fixtures. The machine's
load changes what a run measures, so a recording is checked (its verdict printed)
before it is kept; rerun a scenario whose verdict came out otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _benchlib import CHILD_ENV, EmulatorProcess  # noqa: E402

from batchrek.testing import corpus  # noqa: E402

OUT = ROOT / "tests" / "observe" / "scenarios"


def _photos(folder: Path, n: int, *, fmt: str = "JPEG", size: tuple[int, int] = (320, 240)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ext = {"JPEG": "jpg", "WEBP": "webp"}[fmt]
    data = corpus.photo(*size, fmt=fmt)
    manifest = folder / "manifest.txt"
    lines = []
    for i in range(n):
        path = folder / f"img-{i:05d}.{ext}"
        path.write_bytes(data)
        lines.append(str(path))
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def _slow_fifo(folder: Path, n: int, seconds: float) -> Path:
    """A FIFO manifest whose writer takes ``seconds`` to deliver ``n`` lines."""
    images = _photos(folder / "imgs", n)
    lines = images.read_text().splitlines()
    fifo = folder / "manifest.txt"
    os.mkfifo(fifo)

    def writer() -> None:
        with open(fifo, "w") as fh:
            for i, line in enumerate(lines):
                fh.write(line + "\n")
                fh.flush()
                if i % 10 == 9:
                    time.sleep(seconds * 10 / n)

    threading.Thread(target=writer, daemon=True).start()
    return fifo


SCENARIOS: dict[str, tuple[dict[str, float | None], Callable[[Path], Path], list[str]]] = {
    "quota": ({"quota_tps": 40, "latency_ms": 50, "jitter_ms": 10},
              lambda d: _photos(d, 800), ["--rate", "auto"]),
    "concurrency": ({"latency_ms": 400, "jitter_ms": 20},
                    lambda d: _photos(d, 150), ["--concurrency", "4", "--rate", "1000"]),
    "ramping": ({"latency_ms": 50, "jitter_ms": 10}, lambda d: _photos(d, 2000), []),
    "preparation": ({}, lambda d: _photos(d, 400, fmt="WEBP", size=(2400, 1800)),
                    ["--concurrency", "4", "--rate", "1000"]),
    "source": ({"latency_ms": 20}, lambda d: _slow_fifo(d, 300, 12.0),
               ["--rate", "1000"]),
    "cpu": ({}, lambda d: _photos(d, 12000, size=(200, 160)),
            ["--rate", "100000", "--concurrency", "64"]),
    "too_short": ({"latency_ms": 50}, lambda d: _photos(d, 20), []),
}  # fmt: skip


def record(name: str) -> None:
    emu_settings, make, extra = SCENARIOS[name]
    with tempfile.TemporaryDirectory(prefix="verdict-") as tmp:
        folder = Path(tmp)
        log = folder / "emulator.log"
        with EmulatorProcess(
            quota_tps=emu_settings.get("quota_tps"),
            latency_ms=float(emu_settings.get("latency_ms") or 0.0),
            jitter_ms=float(emu_settings.get("jitter_ms") or 0.0),
            log=log,
        ) as emu:
            manifest = make(folder)
            metrics = folder / "metrics.json"
            args = [sys.executable, "-m", "batchrek", "run", str(manifest),
                    "-o", str(folder / "out.jsonl"), "--endpoint-url", emu.url,
                    "--region", "us-east-1", "--no-dedupe", "--no-progress",
                    "--log-interval-s", "3600", "--metrics-out", str(metrics), *extra]  # fmt: skip
            env = {**os.environ, **CHILD_ENV}
            subprocess.run(args, env=env, cwd=ROOT, timeout=600, check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            text = metrics.read_text().replace(tmp, "<tmp>")
    doc = json.loads(text)
    verdict = doc["verdict"]
    print(f"{name}: {verdict['limiter']}: {verdict['explanation']}\n  try: {verdict['flag']}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(text)


def main() -> None:
    for name in sys.argv[1:] or list(SCENARIOS):
        record(name)


if __name__ == "__main__":
    main()
