"""HTTP: AWS JSON 1.1 on ``POST /``, plus the control endpoints under ``/_emulator``.

Kept lean because it is the hot path of every benchmark: no per-request objects
beyond the request id, orjson for both directions, no access log.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

import orjson
from aiohttp import web

from batchrek.emulator.control import add_control_routes
from batchrek.emulator.service import Service

__all__ = ["MAX_BODY", "SERVICE_KEY", "build_app"]

# A 15 MiB image as base64 plus slack: anything legal reaches validation, which
# answers ImageTooLargeException as the service does rather than a bare 413.
MAX_BODY = 32 * 1024 * 1024
SERVICE_KEY: web.AppKey[Service] = web.AppKey("service", Service)
_TARGET_PREFIX = "RekognitionService."
_CONTENT_TYPE = "application/x-amz-json-1.1"


# Request ids look like UUIDs: a random per-process prefix and a counter (uuid4 per
# request costs more than the rest of a cached answer).
_ID_PREFIX = str(uuid.uuid4())[:24]
_ID_COUNTER = itertools.count(1)


def _respond(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        headers={
            "x-amzn-RequestId": f"{_ID_PREFIX}{next(_ID_COUNTER):012x}",
            "Content-Type": _CONTENT_TYPE,
        },
    )


def _access_key(authorization: str) -> str | None:
    """The access key id of a SigV4 ``Authorization`` header (``Credential=AKID/...``)."""
    start = authorization.find("Credential=")
    if start < 0:
        return None
    return authorization[start + len("Credential=") :].split("/", 1)[0]


async def _rekognition(request: web.Request) -> web.StreamResponse:
    authorization = request.headers.get("Authorization", "")
    if not authorization.startswith("AWS4-HMAC-SHA256"):
        return _respond(
            400,
            {
                "__type": "MissingAuthenticationTokenException",
                "message": "Missing Authentication Token",
            },
        )
    target = request.headers.get("X-Amz-Target", "")
    operation = target[len(_TARGET_PREFIX) :] if target.startswith(_TARGET_PREFIX) else target
    body = await request.read()
    reply = await request.app[SERVICE_KEY].call(
        operation, body, access_key=_access_key(authorization)
    )
    if reply is None:
        # Drop: close without a response; aiohttp treats a cancelled handler as a
        # client that went away and closes quietly.
        if request.transport is not None:
            request.transport.close()
        raise asyncio.CancelledError
    return _respond(reply.status, reply.body)


def build_app(service: Service) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app[SERVICE_KEY] = service
    app.router.add_post("/", _rekognition)
    add_control_routes(app, service)
    return app
