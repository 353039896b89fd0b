"""The emulator runs inside the caller's event loop too, on a port of its own choosing."""

from __future__ import annotations

import socket

import pytest

from batchrek.emulator import Emulator, EmulatorSettings, run_in_thread
from batchrek.testing import corpus
from tests.conftest import aio_rekognition_client


@pytest.mark.anyio
async def test_in_loop_emulator_answers_and_counts() -> None:
    async with Emulator(EmulatorSettings(port=0)) as emu:
        async with aio_rekognition_client(emu.endpoint_url) as client:
            await client.detect_text(Image={"Bytes": corpus.photo()})
        assert emu.stats()["requests"] == {"DetectText": {"ok": 1}}


@pytest.mark.anyio
async def test_port_zero_picks_a_free_port() -> None:
    async with (
        Emulator(EmulatorSettings(port=0)) as first,
        Emulator(EmulatorSettings(port=0)) as second,
    ):
        assert first.endpoint_url != second.endpoint_url


@pytest.mark.anyio
async def test_in_loop_configure_applies_at_once() -> None:
    async with Emulator(EmulatorSettings(port=0)) as emu:
        emu.configure(throttle_rate=1.0)
        async with aio_rekognition_client(emu.endpoint_url) as client:
            with pytest.raises(client.exceptions.ThrottlingException):
                await client.detect_text(Image={"Bytes": corpus.photo()})


def test_run_in_thread_reports_a_busy_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with (
            pytest.raises(RuntimeError, match="did not start"),
            run_in_thread(EmulatorSettings(port=port)),
        ):
            pass
