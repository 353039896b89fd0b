"""The codebase's own standards, checked in the suite so CI enforces them."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

import batchrek

ROOT = Path(__file__).resolve().parent.parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_mypy_strict_passes() -> None:
    proc = _run(sys.executable, "-m", "mypy", "batchrek")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_passes() -> None:
    proc = _run(sys.executable, "-m", "ruff", "check", "batchrek", "tests", "scripts")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_public_api_is_exactly_all() -> None:
    public = {
        name
        for name, value in vars(batchrek).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(batchrek.__all__)


def test_package_is_typed() -> None:
    assert (ROOT / "batchrek" / "py.typed").exists()
