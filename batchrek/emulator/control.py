"""The control endpoints: read stats, reset, change load settings mid-run.

GET  /_emulator/stats    requests by operation and outcome, analyses per image
POST /_emulator/reset    {"settings": true} also restores the start-up settings
GET  /_emulator/config   the current settings
POST /_emulator/config   a JSON partial of the live settings, e.g. {"quota_tps": 20}
GET  /_emulator/health   {"ok": true}
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from batchrek.emulator.service import Service
from batchrek.emulator.settings import SettingsError

__all__ = ["CONTROL_PREFIX", "add_control_routes"]

CONTROL_PREFIX = "/_emulator"


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=f"invalid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return parsed


def add_control_routes(app: web.Application, service: Service) -> None:
    async def stats(_: web.Request) -> web.Response:
        return _json(service.stats.snapshot())

    async def reset(request: web.Request) -> web.Response:
        body = await _body(request)
        service.reset(restore_settings=bool(body.get("settings", False)))
        return _json({"ok": True})

    async def get_config(_: web.Request) -> web.Response:
        return _json(service.settings.as_dict())

    async def set_config(request: web.Request) -> web.Response:
        try:
            settings = service.configure(await _body(request))
        except SettingsError as exc:
            return _json({"error": str(exc)}, status=400)
        return _json(settings.as_dict())

    async def health(_: web.Request) -> web.Response:
        return _json({"ok": True})

    app.router.add_get(f"{CONTROL_PREFIX}/stats", stats)
    app.router.add_post(f"{CONTROL_PREFIX}/reset", reset)
    app.router.add_get(f"{CONTROL_PREFIX}/config", get_config)
    app.router.add_post(f"{CONTROL_PREFIX}/config", set_config)
    app.router.add_get(f"{CONTROL_PREFIX}/health", health)
