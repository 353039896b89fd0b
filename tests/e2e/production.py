"""Shared helpers for the production scenarios (issue 6); this module holds no tests.

The scenarios run the real CLI as a child process that a test can signal or kill,
against the session's emulator and moto's S3 server. Everything that waits polls a
condition in a bounded loop: a slow machine makes a scenario slower, never flaky.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from batchrek.testing import corpus
from tests.e2e.clirun import ROOT, pairs

__all__ = [
    "Child",
    "distinct_images",
    "exactly_once",
    "image_manifest",
    "parse_lines",
    "wait_until",
    "write_jsonl",
]


def distinct_images(folder: Path, n: int, *, salt: int = 0) -> list[Path]:
    """``n`` small JPEGs with pairwise different bytes (so the emulator's per-image
    accounting tells them apart). ``salt`` moves the red box, so images of two
    scenarios never share a digest either."""
    folder.mkdir(parents=True, exist_ok=True)
    box = (0.1 + 0.01 * (salt % 30), 0.2, 0.6, 0.7)
    paths = []
    for i in range(n):
        path = folder / f"img-{i:05d}.jpg"
        path.write_bytes(corpus.photo(96 + i % 64, 96 + i // 64, box=box))
        paths.append(path)
    return paths


def image_manifest(folder: Path, n: int, *, salt: int, prefix: str = "i") -> Path:
    """``folder/m.jsonl``: ``n`` distinct images (``distinct_images``) with ids
    ``{prefix}0``, ``{prefix}1``, ..."""
    imgs = distinct_images(folder / "imgs", n, salt=salt)
    return write_jsonl(
        folder / "m.jsonl", ({"id": f"{prefix}{k}", "image": str(p)} for k, p in enumerate(imgs))
    )


def list_keys(client: Any, bucket: str, prefix: str) -> list[str]:
    """Every key under ``prefix``, sorted (all pages of the listing)."""
    found: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.extend(obj["Key"] for obj in page.get("Contents", ()))
    return sorted(found)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def parse_lines(raw: bytes) -> list[dict[str, Any]]:
    """Every line of an output as a record; raises if any line is not one JSON object."""
    out = []
    for line in raw.splitlines():
        record = orjson.loads(line)
        if not isinstance(record, dict):
            raise ValueError(f"not a record: {line[:80]!r}")
        out.append(record)
    return out


def exactly_once(records: list[dict[str, Any]], expected: Iterable[tuple[str, str]]) -> bool:
    """One record per expected (id, operation) pair: none missing, none extra, no twins."""
    return Counter(pairs(records)) == Counter(set(expected))


def wait_until(predicate: Callable[[], bool], *, timeout_s: float, every_s: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passes; returns the last answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every_s)
    return predicate()


class Child:
    """``python -m batchrek ...`` running in the background; stderr goes to a file so a
    test can wait for a log line without a reader thread."""

    def __init__(self, args: list[str], *, log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "batchrek", *args],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=full_env,
                cwd=ROOT,
            )

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float) -> int | None:
        """The exit code, or None if it is still running after ``timeout_s``."""
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> int:
        self.proc.kill()
        return self.proc.wait(timeout=30)
