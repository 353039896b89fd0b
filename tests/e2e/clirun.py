"""Helpers for end-to-end tests: run the real CLI in a subprocess against the test bed."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str
    records: list[dict[str, Any]]


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def batchrek(
    *args: str,
    output: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> CliResult:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "batchrek", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=ROOT,
    )
    return CliResult(
        code=proc.returncode,
        stdout=proc.stdout,
        stderr=proc.stderr,
        records=read_records(output) if output is not None else [],
    )


def run_args(manifest: Path | str, output: Path | str, endpoint: str, s3: str) -> list[str]:
    """The common part of a `batchrek run` against the bed."""
    return [
        "run",
        str(manifest),
        "-o",
        str(output),
        "--endpoint-url",
        endpoint,
        "--s3-endpoint-url",
        s3,
        "--region",
        "us-east-1",
        "--no-progress",
        "--concurrency",
        "8",
    ]


def pairs(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["id"], r["operation"]) for r in records]
