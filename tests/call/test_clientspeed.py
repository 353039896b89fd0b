"""freeze_user_agent: the header is built once and still sent, through the real client."""

from __future__ import annotations

from typing import Any

import aioboto3
import pytest

from batchrek.call.clientspeed import freeze_user_agent
from batchrek.emulator import EmulatorHandle
from batchrek.testing import corpus

pytestmark = pytest.mark.anyio


async def test_frozen_user_agent_is_sent_on_every_request(emu: EmulatorHandle) -> None:
    session = aioboto3.Session(region_name="us-east-1")
    async with session.client("rekognition", endpoint_url=emu.endpoint_url) as client:
        expected = client._user_agent_creator.to_string()
        assert freeze_user_agent(client)  # fails if botocore renamed what it reaches
        sent: list[str] = []

        def capture(request: Any, **_: Any) -> None:
            value = request.headers["User-Agent"]
            sent.append(value.decode() if isinstance(value, bytes) else value)

        client.meta.events.register("before-send.rekognition", capture)
        for _ in range(2):
            response = await client.detect_labels(Image={"Bytes": corpus.photo()})
            assert response["Labels"]
        assert sent == [expected, expected]
        assert "md/Botocore#" in expected


async def test_rebuild_handler_is_gone(emu: EmulatorHandle) -> None:
    session = aioboto3.Session(region_name="us-east-1")
    async with session.client("rekognition", endpoint_url=emu.endpoint_url) as client:
        original = client._user_agent_creator
        freeze_user_agent(client)
        handlers = list(
            client.meta.events._emitter._handlers.prefix_search("request-created.rekognition")
        )
        assert original.rebuild_and_replace_user_agent_handler not in handlers
        assert client._request_signer.handler in handlers  # signing untouched


def test_without_botocore_internals_nothing_changes() -> None:
    class Bare:
        pass

    assert freeze_user_agent(Bare()) is False
