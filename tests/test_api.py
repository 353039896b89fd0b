"""The public API, used as a library user would: ``anyio.run(run_batch, settings)``
in-process against the emulator, and ``Settings`` validated however it is built."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import anyio
import orjson
import pytest

import batchrek
from batchrek import ConfigError, RunOutcome, Settings, load_settings, run_batch
from batchrek.emulator import EmulatorHandle
from batchrek.testing import corpus


def _manifest(tmp_path: Path) -> Path:
    lines = []
    for n in range(3):
        path = tmp_path / f"img{n}.jpg"
        path.write_bytes(corpus.photo(320 + 16 * n, 240))
        lines.append(orjson.dumps({"id": f"img{n}", "image": str(path), "album": "a"}))
    (tmp_path / "bad.jpg").write_bytes(b"not an image at all")
    lines.append(orjson.dumps({"id": "bad", "image": str(tmp_path / "bad.jpg")}))
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(b"\n".join(lines) + b"\n")
    return manifest


def test_run_batch_in_process_writes_records_and_returns_the_outcome(
    tmp_path: Path, emu: EmulatorHandle
) -> None:
    out = tmp_path / "out.jsonl"
    settings = Settings(
        manifest=str(_manifest(tmp_path)),
        output=str(out),
        operations=("detect_labels", "detect_text"),
        endpoint_url=emu.endpoint_url,
        region="us-east-1",
        concurrency=4,
        rate="1000",
        progress=False,
    )
    outcome = anyio.run(run_batch, settings)

    assert isinstance(outcome, RunOutcome)
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    ok = {(r["id"], r["operation"]) for r in records if r["status"] == "ok"}
    assert ok == {(f"img{n}", op) for n in range(3) for op in ("detect_labels", "detect_text")}
    bad = [r for r in records if r["id"] == "bad"]
    assert {r["error"]["code"] for r in bad} == {"UnsupportedFormat"}
    assert outcome.failed_pairs == 2
    assert outcome.exit_code == 1
    assert outcome.interrupted is False
    assert outcome.summary["ok"] == 6
    assert all(r["meta"] == {"album": "a"} for r in records if r["status"] == "ok")
    assert emu.stats()["total_requests"] == 6  # the bad file never reached the service


def test_settings_are_validated_when_built_directly() -> None:
    with pytest.raises(ConfigError, match=r"concurrency\) must be at least 1"):
        Settings(manifest="m.jsonl", output="o.jsonl", concurrency=0)
    with pytest.raises(ConfigError, match="concurrency must be"):
        Settings(manifest="m.jsonl", output="o.jsonl", concurrency="8")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"unknown operation .detect_lables."):
        Settings(manifest="m.jsonl", output="o.jsonl", operations=("detect_lables",))


def test_settings_are_validated_when_replaced() -> None:
    good = load_settings({"manifest": "m.jsonl", "output": "o.jsonl"}, environ={})
    with pytest.raises(ConfigError, match="max_attempts"):
        dataclasses.replace(good, max_attempts=0)


def test_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    assert batchrek.__version__ == version("batchrek")
