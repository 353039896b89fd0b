"""The ``batchrek emulator`` command: flags become settings; it serves until SIGTERM."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

import batchrek.emulator
from batchrek.emulator import EmulatorControl, EmulatorSettings
from batchrek.emulator.cli import add_arguments, settings_from_args


def _parse(*argv: str) -> EmulatorSettings:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return settings_from_args(parser.parse_args(argv))


def test_flags_become_settings() -> None:
    settings = _parse("--port", "0", "--quota-tps", "7", "--fault-rate", "0.1", "--seed", "9")
    assert (settings.port, settings.quota_tps, settings.fault_rate, settings.seed) == (0, 7, 0.1, 9)


def test_defaults_bind_localhost_without_quota() -> None:
    settings = _parse()
    assert (settings.host, settings.quota_tps, settings.region) == ("127.0.0.1", None, "us-east-1")


def test_module_serves_prints_its_url_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "batchrek.emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        seed = EmulatorControl(url).settings()["seed"]
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
    finally:
        process.kill()
        process.wait()
    hint = process.stderr.read() if process.stderr is not None else ""
    assert (url.startswith("http://127.0.0.1:"), seed, code) == (True, 0, 0)
    assert "any credentials will do" in hint


def test_public_api_is_importable() -> None:
    missing = [name for name in batchrek.emulator.__all__ if not hasattr(batchrek.emulator, name)]
    assert missing == []
