"""A write that fails mid-run stops billing at once and ends the run cleanly.

The sink is a fault-injecting fake behind the ``Sink`` protocol (the run writes to it
as to the file sink): it takes a few records, then fails every write as a full disk
would. The service is the emulator through the real client. The CLI test with a
real file-size limit is ``tests/e2e/test_unwritable_output.py``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest

from batchrek import runner
from batchrek.config import Settings
from batchrek.emulator import EmulatorHandle
from batchrek.errors import OutputFailed
from batchrek.run import run_batch
from batchrek.run import services as services_module
from batchrek.run.halt import Halt
from batchrek.runner import run_from_settings
from tests.e2e.production import image_manifest

pytestmark = pytest.mark.anyio

CONCURRENCY = 4
ACCEPTED = 10


class FullDisk:
    """Takes ``ACCEPTED`` records, then fails like a disk that filled up."""

    def __init__(self, *_: Any, **__: Any) -> None:
        self.records: list[bytes] = []
        self.closed = False

    async def write(self, record: bytes) -> None:
        if len(self.records) >= ACCEPTED:
            raise OutputFailed("out.jsonl", OSError(28, "No space left on device"))
        self.records.append(record)

    async def flush(self, *, durable: bool = False) -> None:
        return None

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture
def sinks(monkeypatch: pytest.MonkeyPatch) -> list[FullDisk]:
    made: list[FullDisk] = []

    def make(*args: Any, **kwargs: Any) -> FullDisk:
        made.append(FullDisk())
        return made[-1]

    monkeypatch.setattr(services_module, "JsonlFileSink", make)
    return made


def _settings(tmp_path: Path, emu: EmulatorHandle) -> Settings:
    return Settings(
        manifest=str(image_manifest(tmp_path, 200, salt=81)),
        output=str(tmp_path / "out.jsonl"),
        endpoint_url=emu.endpoint_url,
        region="us-east-1",
        concurrency=CONCURRENCY,
        rate="1000",
        progress=False,
    )


async def test_a_failed_write_ends_the_run_with_exit_74(
    tmp_path: Path, emu: EmulatorHandle, sinks: list[FullDisk]
) -> None:
    outcome = await run_batch(_settings(tmp_path, emu))
    assert (type(outcome.error), outcome.exit_code, outcome.stopped) == (OutputFailed, 74, True)


async def test_a_failed_write_stops_billing_within_the_calls_in_flight(
    tmp_path: Path, emu: EmulatorHandle, sinks: list[FullDisk]
) -> None:
    await run_batch(_settings(tmp_path, emu))
    buffered = (CONCURRENCY + 4) * 4  # the results stream between workers and writer
    assert emu.stats()["total_requests"] <= ACCEPTED + 1 + CONCURRENCY + buffered


async def test_a_failed_write_is_in_the_summary(
    tmp_path: Path, emu: EmulatorHandle, sinks: list[FullDisk]
) -> None:
    outcome = await run_batch(_settings(tmp_path, emu))
    stopped = outcome.summary["stopped"]
    assert (stopped["reason"], "No space left on device" in stopped["error"]) == (
        "output_failed",
        True,
    )
    assert stopped["pairs_left"] >= 200 - (ACCEPTED + 1 + CONCURRENCY + (CONCURRENCY + 4) * 4)


async def test_the_sink_is_closed_after_a_failed_write(
    tmp_path: Path, emu: EmulatorHandle, sinks: list[FullDisk]
) -> None:
    await run_batch(_settings(tmp_path, emu))
    assert [s.closed for s in sinks] == [True]


async def test_the_cli_run_prints_the_summary_and_what_to_do(
    tmp_path: Path,
    emu: EmulatorHandle,
    sinks: list[FullDisk],
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = await run_from_settings(_settings(tmp_path, emu))
    err = capsys.readouterr().err
    assert code == 74
    assert "batchrek summary (stopped before the end of the manifest)" in err
    assert "cannot write the output out.jsonl: No space left on device; stopped billing" in err


async def test_metrics_that_cannot_be_written_go_to_stdout_with_exit_74(
    tmp_path: Path,
    emu: EmulatorHandle,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = tmp_path / "metrics" / "m.json"
    settings = dataclasses.replace(_settings(tmp_path, emu), metrics_out=str(target))
    real_export = runner.export_metrics

    def export(s: Settings, summary: dict[str, Any]) -> None:
        # The folder was checked (and made) before the run; now it cannot be made.
        target.parent.rmdir()
        target.parent.write_text("now a file")
        real_export(s, summary)

    monkeypatch.setattr(runner, "export_metrics", export)
    code = await run_from_settings(settings)
    out, err = capsys.readouterr()
    assert (code, orjson.loads(out)["ok"], "cannot write the metrics" in err) == (74, 200, True)


class StalledUpload:
    """An S3 output whose upload stalled: every record still lands (in the spool), and
    the first one trips the run's halt with ``OutputFailed``, as the sink's stall
    reporter does."""

    def __init__(self, halts: list[Halt]) -> None:
        self.halts = halts
        self.records: list[dict[str, Any]] = []

    async def write(self, record: bytes) -> None:
        self.records.append(orjson.loads(record))
        self.halts[-1](OutputFailed("s3://b/out/part-1.jsonl", RuntimeError("SlowDown")))

    async def flush(self, *, durable: bool = False) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def test_a_stall_writes_no_record_for_a_pair_it_did_not_bill(
    tmp_path: Path, emu: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The regression: the halt refuses new attempts by raising its error, and an
    # ``OutputFailed`` was classified as this image's permanent InternalClientError:
    # a record a rerun took as done, so those images were never analysed.
    halts: list[Halt] = []
    init = Halt.__init__

    def remembered(self: Halt) -> None:
        init(self)
        halts.append(self)

    monkeypatch.setattr(Halt, "__init__", remembered)
    sink = StalledUpload(halts)
    monkeypatch.setattr(services_module, "JsonlFileSink", lambda *a, **k: sink)
    settings = dataclasses.replace(
        _settings(tmp_path, emu), operations=("detect_labels", "detect_text")
    )
    outcome = await run_batch(settings)
    billed = sum(sum(c.values()) for c in emu.stats()["analyses"].values())
    assert (type(outcome.error), outcome.exit_code) == (OutputFailed, 74)
    assert [r for r in sink.records if r["status"] != "ok"] == []
    assert len(sink.records) == billed
    assert outcome.summary["failed"] == 0
