"""``batchrek demo``: a real batch, on this machine, in a few seconds.

It starts the emulator in-process, writes example images (photos of several sizes,
EXIF-rotated ones, a 24 MP camera-sized JPEG over the 5 MiB cap, a WebP, and two
broken files) and a JSONL manifest, runs the real pipeline over them through the
real aioboto3 client, and prints where the results are. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import orjson

from batchrek.config import load_settings
from batchrek.emulator import EmulatorSettings, run_in_thread
from batchrek.observe import write_report
from batchrek.runner import run_from_settings
from batchrek.testing import corpus

__all__ = ["run_demo"]

# The broken examples: each must end as exactly this error, and nothing else may fail.
_EXPECTED_ERRORS = {"broken-truncated": "CorruptImage", "broken-not-an-image": "UnsupportedFormat"}


def _write_examples(folder: Path, count: int) -> Path:
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, object]] = []

    def add(name: str, data: bytes, **meta: object) -> None:
        path = images / name
        path.write_bytes(data)
        entries.append({"id": path.stem, "image": f"images/{name}", **meta})

    # Exactly ``count`` images: the special examples first (as many as fit), then
    # photos in every EXIF orientation for the rest.
    specials: list[tuple[str, Callable[[], bytes], str]] = [
        ("screenshot.png", lambda: corpus.photo(1280, 800, fmt="PNG"), "png"),
        ("camera-24mp.jpg", lambda: corpus.noisy_photo(6000, 4000, orientation=6), "oversize"),
        ("sticker.webp", lambda: corpus.photo(512, 512, fmt="WEBP"), "webp"),
        ("print-cmyk.jpg", lambda: corpus.cmyk_jpeg(800, 600), "cmyk"),
        ("broken-truncated.jpg", lambda: corpus.truncated(corpus.photo(800, 600)), "broken"),
        ("broken-not-an-image.jpg", corpus.text_named_jpg, "broken"),
    ]
    sizes = [(640, 480), (1024, 768), (480, 640), (1600, 1200), (300, 300)]
    photos = max(1, count - len(specials)) if count > 0 else 0
    for i in range(photos):
        w, h = sizes[i % len(sizes)]
        orientation = (i % 8) + 1
        add(
            f"photo-{i:03d}.jpg",
            corpus.photo(w, h, orientation=orientation),
            orientation=orientation,
        )
    for name, make, kind in specials[: max(0, count - photos)]:
        add(name, make(), kind=kind)
    manifest = folder / "manifest.jsonl"
    manifest.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in entries))
    return manifest


def _check(results: Path) -> list[str]:
    """What went wrong with the demo itself (empty when the demo behaved)."""
    problems = []
    for line in results.read_bytes().splitlines():
        record = orjson.loads(line)
        expected = _EXPECTED_ERRORS.get(record["id"])
        got = record["error"]["code"] if record["error"] else None
        if got != expected:
            problems.append(f"{record['id']}: expected {expected or 'ok'}, got {got or 'ok'}")
    return problems


def run_demo(folder: str, *, count: int = 24) -> int:
    """``count`` example images (at least 1: the CLI checks it) through a real run."""
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    # The emulator ignores credentials, but botocore wants some to sign with.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "demo")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "demo")
    root = Path(folder).resolve()
    manifest = _write_examples(root, count)
    results = root / "results.jsonl"
    metrics = root / "metrics.json"
    with run_in_thread(EmulatorSettings(port=0, latency_ms=40.0, latency_jitter_ms=20.0)) as emu:
        settings = load_settings(
            {
                "manifest": str(manifest),
                "output": str(results),
                "endpoint_url": emu.endpoint_url,
                "region": "us-east-1",
                "operations": ["detect_labels", "detect_text"],
                "concurrency": 16,
                "metrics_out": str(metrics),
                "progress": False,
                "log_interval_s": 2.0,
            },
            environ={},
        )
        # The same run, metrics export and summary as `batchrek run`; its exit code is
        # not the demo's (the broken examples fail on purpose), _check judges instead.
        anyio.run(run_from_settings, settings)
    report = root / "report.html"
    write_report(orjson.loads(metrics.read_bytes()), str(report))
    problems = _check(results)
    print(
        f"\nmanifest: {manifest}\nresults:  {results}\nmetrics:  {metrics}\nreport:   {report}",
        file=sys.stderr,
    )
    if problems:
        print("demo FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(
        "demo ok: every image analysed; the two broken examples are error records, as "
        "they should be. Rerun the same command: resume skips everything already done.",
        file=sys.stderr,
    )
    return 0
