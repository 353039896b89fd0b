"""Outages are waited out, not burned: through the CLI, against the emulator's own
faults (fault_rate = 1.0: every call answers 500) and a stop/start of an emulator on
a fixed port (connection refused). The breaker's timings come from a config file,
short, so no test waits out a real ten-minute outage.

``--max-attempts 2`` makes the point: without the breaker, an outage of a second
would spend both attempts of every item in flight and after it, and they would end
as failed records (exit 1).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from batchrek.emulator import EmulatorHandle, EmulatorSettings, run_in_thread
from tests.conftest import S3Bed
from tests.e2e.clirun import batchrek, read_records, run_args
from tests.e2e.production import Child, exactly_once, image_manifest, wait_until
from tests.e2e.stops import StopSeen, stop_seen

pytestmark = pytest.mark.slow

IMAGES = 80
OP = "detect_labels"
BREAKER = "breaker_probe_s = 0.05\nbreaker_probe_max_s = 0.2\n"


def _failed_calls(emu: EmulatorHandle) -> int:
    return int(emu.stats()["requests"].get("DetectLabels", {}).get("InternalServerError", 0))


def _expected() -> set[tuple[str, str]]:
    return {(f"i{n}", OP) for n in range(IMAGES)}


def _start(
    tmp_path: Path,
    emu_url: str,
    s3: S3Bed,
    config: str,
    salt: int,
    *,
    extra: tuple[str, ...] = (),
) -> tuple[Child, Path, list[str]]:
    """The run started; ``extra``: flags for this run only, not in the args returned
    for a rerun."""
    manifest = image_manifest(tmp_path, IMAGES, salt=salt)
    out = tmp_path / "out.jsonl"
    (tmp_path / "batchrek.toml").write_text(config)
    args = [
        *run_args(manifest, out, emu_url, s3.endpoint_url),
        "--config",
        str(tmp_path / "batchrek.toml"),
        "--max-attempts",
        "2",
        "--rate",
        "40",
    ]
    return Child([*args, *extra], log=tmp_path / "stderr.txt"), out, args


def _finish(child: Child) -> int | None:
    try:
        return child.wait(90)
    finally:
        if child.running:
            child.kill()


def test_a_short_outage_mid_run_is_waited_out_and_every_pair_ends_ok_billed_once(
    tmp_path: Path, emu: EmulatorHandle, s3: S3Bed
) -> None:
    child, out, _ = _start(tmp_path, emu.endpoint_url, s3, BREAKER + "outage_timeout_s = 60\n", 51)
    try:
        wait_until(lambda: len(read_records(out)) >= 15, timeout_s=60)
        emu.configure(fault_rate=1.0)
        # The breaker has opened and probed a few times: the outage lasts a while.
        wait_until(lambda: "pausing calls" in child.stderr(), timeout_s=30)
        wait_until(lambda: _failed_calls(emu) >= 30, timeout_s=30)
        emu.configure(fault_rate=0.0)
    finally:
        code = _finish(child)
    records = read_records(out)
    assert code == 0, child.stderr()
    assert exactly_once(records, _expected())
    assert {r["status"] for r in records} == {"ok"}
    assert sorted(emu.analyses("DetectLabels").values()) == [1] * IMAGES


@pytest.fixture
def long_outage(tmp_path: Path, emu: EmulatorHandle, s3: S3Bed) -> dict[str, Any]:
    """An outage longer than outage_timeout_s (1 s here), then a rerun once it ends."""
    metrics = tmp_path / "metrics.json"
    child, out, args = _start(
        tmp_path,
        emu.endpoint_url,
        s3,
        BREAKER + "outage_timeout_s = 1\n",
        52,
        extra=("--metrics-out", str(metrics)),
    )
    try:
        wait_until(lambda: len(read_records(out)) >= 15, timeout_s=60)
        emu.configure(fault_rate=1.0)
    finally:
        code = _finish(child)
    first = read_records(out)
    emu.configure(fault_rate=0.0)
    rerun = batchrek(*args, output=out)
    return {
        "code": code,
        "stderr": child.stderr(),
        "seen": stop_seen(child.stderr(), output=out, metrics=metrics),
        "first": first,
        "rerun": rerun,
        "billed": emu.analyses("DetectLabels"),
    }


def test_an_outage_longer_than_the_setting_exits_3_saying_so(long_outage: dict[str, Any]) -> None:
    last = long_outage["stderr"].strip().splitlines()[-1]
    assert long_outage["code"] == 3, long_outage["stderr"]
    assert "has not answered for" in last
    assert "rerun later with the same -o to resume" in last


def test_an_outage_stop_ends_with_the_summary_and_stop_in_the_metrics(
    long_outage: dict[str, Any],
) -> None:
    seen: StopSeen = long_outage["seen"]
    ok = len(long_outage["first"])  # every record is ok (the next test)
    assert (seen.summary_block, seen.output_line) == (True, True), long_outage["stderr"]
    assert (seen.ok, seen.failed, seen.billed) == (ok, 0, ok)
    assert (seen.stop["kind"], seen.stop["exit_code"]) == ("outage", 3)
    assert "rerun later with the same -o" in seen.stop["fix"]


def test_the_outage_is_never_recorded_against_an_item(long_outage: dict[str, Any]) -> None:
    assert {r["status"] for r in long_outage["first"]} == {"ok"}


def test_after_the_outage_the_rerun_finishes_exactly_once(long_outage: dict[str, Any]) -> None:
    assert long_outage["rerun"].code == 0, long_outage["rerun"].stderr
    assert exactly_once(long_outage["rerun"].records, _expected())
    assert sorted(long_outage["billed"].values()) == [1] * IMAGES


def test_an_emulator_stopped_and_started_again_mid_run_is_waited_for(
    tmp_path: Path, s3: S3Bed
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = EmulatorSettings(port=port, s3_endpoint_url=s3.endpoint_url)
    billed: dict[str, int] = {}
    with run_in_thread(settings) as first:
        child, out, _ = _start(
            tmp_path, first.endpoint_url, s3, BREAKER + "outage_timeout_s = 60\n", 53
        )
        try:
            wait_until(lambda: len(read_records(out)) >= 15, timeout_s=60)
            # Drop every new call, so the count below is final when nothing is in flight.
            first.configure(drop_rate=1.0)
            wait_until(lambda: first.stats()["in_flight"] == 0, timeout_s=30)
        except BaseException:
            child.kill()
            raise
        for image, n in first.analyses("DetectLabels").items():
            billed[image] = billed.get(image, 0) + n
    try:
        wait_until(lambda: "pausing calls" in child.stderr(), timeout_s=30)
        with run_in_thread(settings) as second:
            code = _finish(child)
            for image, n in second.analyses("DetectLabels").items():
                billed[image] = billed.get(image, 0) + n
    finally:
        if child.running:
            child.kill()
    records = read_records(out)
    assert code == 0, child.stderr()
    assert exactly_once(records, _expected())
    assert sorted(billed.values()) == [1] * IMAGES
