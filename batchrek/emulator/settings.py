"""The emulator's options, one frozen value; live changes make a new one.

Only the load knobs (latency, quotas, fault rates, seed) may change while the server
runs: host, port, region and the S3 endpoint are fixed at start-up because clients
and the shared S3 client already depend on them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batchrek.emulator.projects import STATUSES

__all__ = ["LIVE_FIELDS", "EmulatorSettings", "SettingsError"]


class SettingsError(ValueError):
    """A settings change names an unknown option or gives an impossible value."""


@dataclass(frozen=True)
class EmulatorSettings:
    """Everything the emulator can be told.

    ``quota_tps`` is each operation's quota (``None``: unlimited);
    ``quota_overrides`` maps an API operation name to its own quota (``None`` there
    means unlimited for that operation even when ``quota_tps`` is set).

    The account's side, to rehearse run-level failures: ``access_keys`` (``None``:
    any key is accepted; otherwise a request signed with another access key id gets
    UnrecognizedClientException), ``expired_keys`` (access key ids whose session the
    service calls expired: ExpiredTokenException, as when a role session ran out before
    it was renewed), ``denied_operations`` (API names answered with
    AccessDeniedException, as for a role without the permission) and
    ``project_versions`` (the Custom Labels models and their status, see
    ``emulator.projects``).
    """

    host: str = "127.0.0.1"
    port: int = 0
    region: str = "us-east-1"
    s3_endpoint_url: str | None = None
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    quota_tps: float | None = None
    quota_overrides: Mapping[str, float | None] = field(default_factory=dict)
    throttle_rate: float = 0.0
    fault_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int = 0
    access_keys: tuple[str, ...] | None = None
    expired_keys: tuple[str, ...] = ()
    denied_operations: tuple[str, ...] = ()
    project_versions: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        for name in ("throttle_rate", "fault_rate", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise SettingsError(f"{name} must be between 0 and 1, got {value}")
        if self.latency_ms < 0 or self.latency_jitter_ms < 0:
            raise SettingsError("latency_ms and latency_jitter_ms must be >= 0")
        quotas = [self.quota_tps, *self.quota_overrides.values()]
        if any(q is not None and q < 0 for q in quotas):
            raise SettingsError("quotas must be >= 0 (or null for unlimited)")
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port out of range: {self.port}")
        bad = sorted(set((self.project_versions or {}).values()) - STATUSES)
        if bad:
            raise SettingsError(f"unknown model status(es) {bad}; use one of {sorted(STATUSES)}")

    def quota_for(self, operation: str) -> float | None:
        """The TPS quota for one API operation, or None when unlimited."""
        if operation in self.quota_overrides:
            return self.quota_overrides[operation]
        return self.quota_tps

    def changed(self, changes: Mapping[str, Any]) -> EmulatorSettings:
        """A copy with ``changes`` applied; only live fields may change."""
        unknown = sorted(set(changes) - _FIELDS)
        if unknown:
            raise SettingsError(
                f"unknown setting(s): {', '.join(unknown)}; the settings that can change are "
                f"{', '.join(sorted(LIVE_FIELDS))}"
            )
        fixed = sorted(set(changes) - LIVE_FIELDS)
        if fixed:
            raise SettingsError(
                f"cannot change {', '.join(fixed)} at run time (fixed at start-up); the "
                f"settings that can change are {', '.join(sorted(LIVE_FIELDS))}"
            )
        values = dict(changes)
        if "quota_overrides" in values:
            values["quota_overrides"] = dict(values["quota_overrides"] or {})
        for name in ("access_keys", "expired_keys", "denied_operations"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        for name in ("expired_keys", "denied_operations"):
            if name in values and values[name] is None:
                values[name] = ()
        if values.get("project_versions") is not None:
            values["project_versions"] = dict(values["project_versions"])
        try:
            return dataclasses.replace(self, **values)
        except TypeError as exc:
            raise SettingsError(str(exc)) from exc

    def live(self) -> dict[str, Any]:
        """The live fields as JSON-ready values (what ``changed`` accepts)."""
        out = {name: getattr(self, name) for name in sorted(LIVE_FIELDS)}
        return _jsonable(out)

    def as_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))


def _jsonable(out: dict[str, Any]) -> dict[str, Any]:
    out["quota_overrides"] = dict(out["quota_overrides"])
    if out.get("project_versions") is not None:
        out["project_versions"] = dict(out["project_versions"])
    for name in ("access_keys", "expired_keys", "denied_operations"):
        if out.get(name) is not None:
            out[name] = list(out[name])
    return out


LIVE_FIELDS = frozenset(
    {
        "latency_ms",
        "latency_jitter_ms",
        "quota_tps",
        "quota_overrides",
        "throttle_rate",
        "fault_rate",
        "drop_rate",
        "seed",
        "access_keys",
        "expired_keys",
        "denied_operations",
        "project_versions",
    }
)

_FIELDS = frozenset(f.name for f in dataclasses.fields(EmulatorSettings))
