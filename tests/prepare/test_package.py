"""The package surface: every module imports on its own, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "batchrek.prepare.imaging._transcode",
        "batchrek.prepare.pool",
        "batchrek.prepare.route",
        "batchrek.testing.corpus",
    ],
)
def test_module_imports_first_without_a_cycle(module: str) -> None:
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)


def test_imaging_names_are_the_functions_not_the_submodules() -> None:
    from batchrek.prepare import imaging

    assert imaging.inspect.__module__ == "batchrek.prepare.imaging._inspect"
    assert imaging.transcode.__module__ == "batchrek.prepare.imaging._transcode"
