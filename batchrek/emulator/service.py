"""The emulated service, without HTTP: one call in, one reply (or a drop) out.

Order of events for a call, as a client would see it: the load model decides at
arrival (quota token, fault draws, latency); the call waits out its latency; then it
is dropped, failed, or validated and answered. Only successful calls count as
billable analyses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from batchrek.emulator.accounting import Stats
from batchrek.emulator.apierrors import ServiceError
from batchrek.emulator.facestore import ACCOUNT_ID, FaceStore
from batchrek.emulator.images import ImageResolver
from batchrek.emulator.load import DROP, LoadModel
from batchrek.emulator.operations import HANDLERS, Context
from batchrek.emulator.projects import ModelStore
from batchrek.emulator.s3access import S3Access
from batchrek.emulator.settings import EmulatorSettings

__all__ = ["Reply", "Service"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any]


def error_reply(error: ServiceError) -> Reply:
    return Reply(error.status, {"__type": error.code, "Message": error.message})


class Service:
    def __init__(self, settings: EmulatorSettings, s3: S3Access) -> None:
        self._initial = settings
        self.settings = settings
        self.stats = Stats()
        self.load = LoadModel(settings)
        self.faces = FaceStore(settings.region)
        self.resolver = ImageResolver(s3)
        self.models = ModelStore(settings.region, settings.project_versions)
        self._ctx = Context(self.resolver, self.faces, self.models)

    def configure(self, changes: Mapping[str, Any]) -> EmulatorSettings:
        """Apply a partial change of the live settings (raises SettingsError)."""
        self.settings = self.settings.changed(changes)
        self.load.configure(self.settings)
        self.models.declare(self.settings.project_versions)
        return self.settings

    def reset(self, *, restore_settings: bool = False) -> None:
        """Forget stats, collections and caches; optionally the start-up settings too."""
        if restore_settings:
            self.settings = self._initial
            self.load.configure(self.settings)
            self.models.declare(self.settings.project_versions)
        self.load.reset()
        self.stats.clear()
        self.faces.clear()
        self.resolver.clear()

    async def call(
        self, operation: str, body: bytes, *, access_key: str | None = None
    ) -> Reply | None:
        """The reply to one call, or None when the connection must be dropped.
        ``access_key`` is the access key id the request was signed with."""
        handler = HANDLERS.get(operation)
        self.stats.started()
        outcome = "InternalServerError"
        try:
            if handler is None:
                raise ServiceError("UnknownOperationException", f"Unknown operation {operation}")
            self._authorise(operation, access_key)
            decision = self.load.decide(operation)
            if decision.delay_s > 0:
                await asyncio.sleep(decision.delay_s)
            if decision.drop:
                outcome = DROP
                return None
            if decision.error is not None:
                raise decision.error
            result = await handler(self._ctx, _params(body))
            for picture in result.pictures:
                self.stats.analysed(operation, picture.key, picture.mode)
            outcome = "ok"
            return Reply(200, result.response)
        except ServiceError as exc:
            outcome = exc.code
            return error_reply(exc)
        except Exception:
            log.exception("emulator bug while answering %s", operation)
            return error_reply(ServiceError("InternalServerError", "Internal server error", 500))
        finally:
            self.stats.finished(operation or "-", outcome)

    def _authorise(self, operation: str, access_key: str | None) -> None:
        """As the service does before anything else: who is calling, and may they."""
        keys = self.settings.access_keys
        if keys is not None and access_key not in keys:
            raise ServiceError(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        if access_key is not None and access_key in self.settings.expired_keys:
            raise ServiceError(
                "ExpiredTokenException", "The security token included in the request is expired"
            )
        if operation in self.settings.denied_operations:
            raise ServiceError(
                "AccessDeniedException",
                f"User: arn:aws:iam::{ACCOUNT_ID}:user/emulator is not authorized to perform: "
                f"rekognition:{operation}",
            )

    def __repr__(self) -> str:
        return f"Service(region={self.settings.region!r}, {self.stats!r})"


def _params(body: bytes) -> dict[str, Any]:
    try:
        params = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise ServiceError("SerializationException", "Request body is not valid JSON") from exc
    if not isinstance(params, dict):
        raise ServiceError("SerializationException", "Request body must be a JSON object")
    return params
