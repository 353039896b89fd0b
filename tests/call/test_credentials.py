from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiobotocore.credentials import AioCredentials, AioRefreshableCredentials

from batchrek.call.credentials import force_refresh


class _Signer:
    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials


class _Client:
    def __init__(self, credentials: Any) -> None:
        self._request_signer = _Signer(credentials)


def _metadata(n: int) -> dict[str, str]:
    expiry = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    return {"access_key": f"AK{n}", "secret_key": "s", "token": "t", "expiry_time": expiry}


@pytest.mark.anyio
async def test_refreshable_credentials_are_renewed_in_place() -> None:
    calls: list[int] = []

    async def fetch() -> dict[str, str]:
        calls.append(1)
        return _metadata(len(calls))

    creds = AioRefreshableCredentials.create_from_metadata(
        _metadata(0), refresh_using=fetch, method="test"
    )
    assert await force_refresh(_Client(creds)) is True
    assert (await creds.get_frozen_credentials()).access_key == "AK1"


@pytest.mark.anyio
async def test_static_credentials_cannot_be_refreshed() -> None:
    assert await force_refresh(_Client(AioCredentials("AK", "SK"))) is False
