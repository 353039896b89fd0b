"""Settings, layered: built-in defaults < --config FILE (TOML) < BATCHREK_* env < flags.

Every setting has one name used in all four layers: ``concurrency`` is
``concurrency = 64`` in the file, ``BATCHREK_CONCURRENCY=64`` in the environment and
``--concurrency 64`` on the command line. Tables (``[params.<operation>]``,
``[rates]``, ``[bucket_regions]``) exist only in the file.

Anything that cannot work raises ConfigError naming the setting and the fix; the CLI
turns that into exit 2 before a single request is made.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin, get_type_hints

from batchrek.call.operations import RUNNABLE, Operation, build_operations
from batchrek.errors import ConfigError

__all__ = ["Settings", "load_settings"]

LogFormat = Literal["text", "json"]
Oversize = Literal["resize", "stage", "fail"]
RequestPath = Literal["lean", "sdk"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything one run needs to know. See configs/default.toml for each meaning."""

    manifest: str = ""
    output: str = ""
    manifest_format: str | None = None
    operations: tuple[str, ...] = ("detect_labels",)
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    s3_endpoint_url: str | None = None
    concurrency: int = 64
    request_path: RequestPath = "lean"  # how a call is made: batchrek.call.lean, or aiobotocore
    max_attempts: int = 8
    item_deadline_s: float = 300.0
    rate: str = "auto"  # "auto" or a number: TPS per operation
    resume: bool = True
    dedupe: bool = True
    dedupe_cache: int = 20_000
    metrics_out: str | None = None
    metrics_textfile: str | None = None
    pushgateway: str | None = None
    job_name: str = "batchrek"
    progress: bool = True
    log_format: LogFormat = "text"
    log_interval_s: float = 10.0
    dry_run: bool = False
    limit: int | None = None
    allow_http: bool = False
    http_timeout_s: float = 30.0
    max_source_bytes: int = 100 * 1024 * 1024
    oversize: Oversize = "resize"
    staging_bucket: str | None = None
    shard_index: int | None = None
    shard_count: int | None = None
    shard_rate_split: bool = True
    grace_period_s: float = 25.0
    part_records: int = 10_000
    part_seconds: float = 60.0
    price_per_image: float = 0.001
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    rates: Mapping[str, float] = field(default_factory=dict)
    bucket_regions: Mapping[str, str] = field(default_factory=dict)

    # -- derived -------------------------------------------------------------

    @property
    def effective_region(self) -> str:
        return self.region or "us-east-1"

    def build_operations(self) -> tuple[Operation, ...]:
        return build_operations(self.operations, self.params)

    def fixed_rate(self, method: str) -> float | None:
        """The TPS set for an operation, or None when the rate is found automatically."""
        if method in self.rates:
            return float(self.rates[method])
        if self.rate == "auto":
            return None
        return float(self.rate)


_TABLES = ("params", "rates", "bucket_regions")
_HINTS = get_type_hints(Settings)
_FIELDS = {f.name for f in dataclasses.fields(Settings)}
_SCALARS = sorted(_FIELDS - set(_TABLES) - {"manifest", "output"})


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, _FIELDS, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _coerce(name: str, value: Any, where: str) -> Any:
    """Turn a file/env/flag value into the field's type, or say what is wrong."""
    hint = _HINTS[name]
    args = [a for a in get_args(hint) if a is not type(None)]
    if value is None:
        if type(None) in get_args(hint):
            return None
        raise ConfigError(f"{where}: {name} cannot be empty")
    target = args[0] if get_origin(hint) is not Literal and args else hint
    if get_origin(hint) is Literal or get_origin(target) is Literal:
        choices = get_args(target if get_origin(target) is Literal else hint)
        if value not in choices:
            raise ConfigError(f"{where}: {name} must be one of {', '.join(choices)}, not {value!r}")
        return value
    if name == "operations":
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{where}: operations must be a list of operation names")
        return tuple(i.strip() for i in items if i.strip())
    try:
        if target is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            if not isinstance(value, bool):
                raise ValueError(value)
            return value
        if target is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if target is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if target is str:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{where}: {name} must be {getattr(target, '__name__', target)}, not {value!r}"
        ) from None
    return value


def _from_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in _TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: [{key}] must be a table")
            out[key] = value
        elif key in _SCALARS:
            out[key] = _coerce(key, value, path)
        else:
            raise ConfigError(f"{path}: unknown setting {key!r}{_suggest(key)}")
    for op, table in out.get("params", {}).items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [params.{op}] must be a table of API parameters")
    for op, rate in out.get("rates", {}).items():
        if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
            raise ConfigError(f"{path}: [rates] {op} must be a positive number of TPS")
    for bucket, region in out.get("bucket_regions", {}).items():
        if not isinstance(region, str):
            raise ConfigError(f"{path}: [bucket_regions] {bucket} must be a region name")
    return out


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith("BATCHREK_"):
            continue
        name = key[len("BATCHREK_") :].lower()
        if name in _SCALARS:
            out[name] = _coerce(name, raw, f"environment {key}")
    return out


def _validate(s: Settings) -> None:
    if not s.dry_run and not s.output:
        raise ConfigError("no output: pass -o results.jsonl (or s3://bucket/prefix/)")
    if s.concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, not {s.concurrency}")
    if s.max_attempts < 1:
        raise ConfigError(f"max_attempts must be at least 1, not {s.max_attempts}")
    if s.rate != "auto":
        try:
            rate = float(s.rate)
        except ValueError:
            raise ConfigError(f"rate must be 'auto' or a number of TPS, not {s.rate!r}") from None
        if rate <= 0:
            raise ConfigError(f"rate must be positive, not {s.rate}")
    if s.limit is not None and s.limit < 0:
        raise ConfigError(f"limit must not be negative, not {s.limit}")
    if s.oversize == "stage" and not (s.staging_bucket or "").startswith("s3://"):
        raise ConfigError("oversize = stage needs staging_bucket = s3://bucket/prefix/")
    if s.shard_count is not None:
        if s.shard_count < 1:
            raise ConfigError(f"shard_count must be at least 1, not {s.shard_count}")
        index = s.shard_index or 0
        if not 0 <= index < s.shard_count:
            raise ConfigError(f"shard_index must be in 0..{s.shard_count - 1}, not {index}")
    elif s.shard_index not in (None, 0):
        raise ConfigError("shard_index is set but shard_count is not (BATCHREK_SHARD_COUNT)")
    unknown_rates = sorted(set(s.rates) - set(RUNNABLE))
    if unknown_rates:
        raise ConfigError(f"[rates] names unknown operation(s): {', '.join(unknown_rates)}")
    s.build_operations()  # parameters checked against botocore's model


def _shard_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Indexed Jobs and AWS Batch array jobs say which shard a pod is."""
    out: dict[str, Any] = {}
    for key in ("JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"):
        if environ.get(key, "").strip():
            out["shard_index"] = _coerce("shard_index", environ[key], f"environment {key}")
            break
    return out


def load_settings(
    flags: Mapping[str, Any],
    *,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build Settings from the four layers; ``flags`` holds only what was given."""
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = {}
    if config_file:
        merged.update(_from_file(config_file))
    merged.update(_shard_from_env(environ))
    merged.update(_from_env(environ))
    for name, value in flags.items():
        if value is None:
            continue
        if name not in _FIELDS:
            raise ConfigError(f"internal: flag {name!r} has no setting")
        merged[name] = value if name in ("manifest", "output") else _coerce(name, value, "flag")
    if "region" not in merged:
        env_region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
        if env_region:
            merged["region"] = env_region
    settings = Settings(**merged)
    _validate(settings)
    return settings
