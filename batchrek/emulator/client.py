"""A tiny synchronous client for the control endpoints (tests and scripts).

urllib only, so a test or a benchmark can steer an emulator in another thread or
process without an event loop of its own.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

__all__ = ["EmulatorControl", "EmulatorControlError"]


# The emulator is local: never route control calls through an HTTP(S)_PROXY.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class EmulatorControlError(RuntimeError):
    """The emulator refused a control request (e.g. an unknown setting)."""


class EmulatorControl:
    def __init__(self, endpoint_url: str, *, timeout: float = 10.0) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        self._timeout = timeout

    def stats(self) -> dict[str, Any]:
        """Requests by operation and outcome, and analyses per operation and image key."""
        stats: dict[str, Any] = self._call("GET", "stats")
        return stats

    def reset(self, *, settings: bool = False) -> None:
        """Clear stats, collections and caches; ``settings=True`` restores start-up settings."""
        self._call("POST", "reset", {"settings": settings})

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change live settings (latency_ms, quota_tps, quota_overrides, fault rates, seed)."""
        settings: dict[str, Any] = self._call("POST", "config", changes)
        return settings

    def settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = self._call("GET", "config")
        return settings

    def analyses(self, operation: str) -> dict[str, int]:
        """How many billable analyses each image had for one operation."""
        found: dict[str, int] = self.stats()["analyses"].get(operation, {})
        return found

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.endpoint_url}/_emulator/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with _OPENER.open(request, timeout=self._timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise EmulatorControlError(f"{method} {path}: {exc.code} {exc.read()!r}") from exc

    def __repr__(self) -> str:
        return f"EmulatorControl({self.endpoint_url!r})"
