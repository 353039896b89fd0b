"""The preflight against the emulator, through the real aioboto3 client; its waits
are on a fake clock, so a dead endpoint costs no real time."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from batchrek.call import build_operations, preflight
from batchrek.clock import FakeClock
from batchrek.emulator import EmulatorHandle
from batchrek.emulator.projects import version_arn
from batchrek.errors import RunStopped, ServiceOutage
from tests.conftest import aio_rekognition_client

pytestmark = pytest.mark.anyio

MODEL = version_arn("shop", "v1")


def ops(method: str = "detect_labels", **params: Any) -> Any:
    return build_operations([method], {method: params} if params else {})


async def run(url: str, operations: Any, clock: FakeClock | None = None) -> None:
    async with aio_rekognition_client(url) as client:
        await preflight(
            client,
            operations,
            region="us-east-1",
            connect_timeout_s=5.0,
            outage_timeout_s=60.0,
            clock=clock or FakeClock(),
        )


def sent(emu: EmulatorHandle) -> dict[str, int]:
    return {op: sum(n.values()) for op, n in emu.stats()["requests"].items()}


async def test_a_plain_run_probes_with_one_list_collections(emu: EmulatorHandle) -> None:
    await run(emu.endpoint_url, ops())
    assert sent(emu) == {"ListCollections": 1}


async def test_a_missing_collection_stops_the_run_before_any_call(emu: EmulatorHandle) -> None:
    with pytest.raises(RunStopped, match="collection 'gone' does not exist"):
        await run(emu.endpoint_url, ops("index_faces", CollectionId="gone"))


async def test_an_existing_collection_passes(emu: EmulatorHandle, rekognition: Any) -> None:
    rekognition.create_collection(CollectionId="here")
    await run(emu.endpoint_url, ops("search_faces_by_image", CollectionId="here"))
    assert sent(emu) == {"CreateCollection": 1, "DescribeCollection": 1}


async def test_a_stopped_model_stops_the_run_saying_its_status(emu: EmulatorHandle) -> None:
    emu.configure(project_versions={MODEL: "STOPPED"})
    with pytest.raises(RunStopped, match="the model is STOPPED, not RUNNING"):
        await run(emu.endpoint_url, ops("detect_custom_labels", ProjectVersionArn=MODEL))


async def test_a_model_that_does_not_exist_stops_the_run(emu: EmulatorHandle) -> None:
    emu.configure(project_versions={version_arn("shop", "v2"): "RUNNING"})
    with pytest.raises(RunStopped, match="has no version 'v1'"):
        await run(emu.endpoint_url, ops("detect_custom_labels", ProjectVersionArn=MODEL))


async def test_a_running_model_passes(emu: EmulatorHandle) -> None:
    emu.configure(project_versions={MODEL: "RUNNING"})
    await run(emu.endpoint_url, ops("detect_custom_labels", ProjectVersionArn=MODEL))


async def test_unknown_credentials_stop_the_run(emu: EmulatorHandle) -> None:
    emu.configure(access_keys=["SOMEONE-ELSE"])
    with pytest.raises(RunStopped, match="credentials are not valid"):
        await run(emu.endpoint_url, ops())


async def test_a_role_without_list_collections_is_not_stopped(emu: EmulatorHandle) -> None:
    emu.configure(denied_operations=["ListCollections"])
    await run(emu.endpoint_url, ops())


async def test_an_endpoint_that_never_answers_stops_the_run_naming_it() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    clock = FakeClock()
    with pytest.raises(RunStopped, match=f"cannot reach the Rekognition endpoint {url}"):
        await run(url, ops(), clock)
    assert clock.now < 10.0


async def test_an_endpoint_answering_5xx_is_an_outage_after_the_timeout(
    emu: EmulatorHandle,
) -> None:
    emu.configure(fault_rate=1.0)
    with pytest.raises(ServiceOutage, match="has failed for"):
        await run(emu.endpoint_url, ops())
