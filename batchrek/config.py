"""Settings, layered: built-in defaults < --config FILE (TOML) < BATCHREK_* env < flags.

Every setting has one name used in all four layers: ``concurrency`` is
``concurrency = 64`` in the file, ``BATCHREK_CONCURRENCY=64`` in the environment and
``--concurrency 64`` on the command line. Tables (``[params.<operation>]``,
``[rates]``, ``[bucket_regions]``) exist only in the file.

Anything that cannot work raises ConfigError naming the setting and the fix; the CLI
turns that into exit 2 before a single request is made. A message names what the user
can type: the flag where there is one (``--allow-http (setting allow_http)``), else
the setting and its variable (``setting http_timeout_s (BATCHREK_HTTP_TIMEOUT_S)``).

Every number is range-checked here, whichever layer set it. Unknown names are errors
in every layer: a typo in the file (``max_attempt``) or in the environment
(``BATCHREK_CONCURENCY``) stops the run with a suggestion, because a setting that is
silently ignored runs a job at a rate or concurrency nobody chose. Every
``BATCHREK_*`` variable is therefore read as a setting; a wrapper's own variables
need another prefix.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin, get_type_hints

from batchrek.call import RUNNABLE, BreakerSettings, Operation, build_operations
from batchrek.errors import ConfigError
from batchrek.manifest import ReadOptions, Selection
from batchrek.models import Oversize
from batchrek.output import RedoFailed, normalize_redo, redo_codes
from batchrek.prepare import AddressPolicy, accepted_formats, extensions_for
from batchrek.s3uri import S3UriError, parse_s3_prefix

__all__ = ["FLAGS", "Settings", "load_settings", "name_for"]

LogFormat = Literal["text", "json"]
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
    redo_failed: str | None = None  # "all" or "Code,Code": permanent failures a rerun redoes
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
    # An empty manifest (or --limit 0) is exit 2, "no items"; a job that can
    # legitimately find nothing sets allow_empty = true (or BATCHREK_ALLOW_EMPTY=1).
    allow_empty: bool = False
    allow_http: bool = False
    allow_private_addresses: bool = False
    allow_loopback_addresses: bool = False
    http_timeout_s: float = 30.0
    max_source_bytes: int = 100 * 1024 * 1024
    max_inflight_source_bytes: int | None = None  # None: max(max_source_bytes, 8 MiB x concurrency)
    input_formats: tuple[str, ...] = ()  # empty: every format on the allow-list
    follow_outside_symlinks: bool = False
    max_leading_bad_lines: int = 100
    max_bad_line_share: float = 0.5
    oversize: Oversize = "resize"
    staging_bucket: str | None = None
    shard_index: int | None = None
    shard_count: int | None = None
    shard_rate_split: bool = True
    # Where processes sharing the quota leave notes of their rates (run.peers): "auto"
    # (a sharded rate-auto run: beside the output), "off", a folder or s3://…/.
    peers: str = "auto"
    peer_interval_s: float = 2.0
    grace_period_s: float = 25.0
    part_records: int = 10_000
    part_seconds: float = 60.0
    spool_dir: str | None = None
    outage_timeout_s: float = 600.0
    breaker_threshold: int = 5
    breaker_probe_s: float = 1.0
    breaker_probe_max_s: float = 15.0
    preflight_timeout_s: float = 10.0
    price_per_image: float = 0.001
    ledger: str | None = None  # a directory or s3://bucket/prefix/: what earlier runs did
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    rates: Mapping[str, float] = field(default_factory=dict)
    bucket_regions: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """However Settings are built (``load_settings``, directly, ``replace``), a
        value that cannot work is a ConfigError here, before anything runs."""
        _check_types(self)
        _validate(self)

    # -- derived -------------------------------------------------------------

    def selection(self) -> Selection:
        """Which manifest items this run takes (its shard, at most ``limit``)."""
        return Selection(
            shard_index=self.shard_index or 0, shard_count=self.shard_count or 1, limit=self.limit
        )

    def source_budget_bytes(self) -> int:
        """Bytes of sources fetched or held at once, over all items: the setting, or
        room for every in-flight request to hold an 8 MiB photo (and at least one
        largest source)."""
        if self.max_inflight_source_bytes is not None:
            return self.max_inflight_source_bytes
        return max(self.max_source_bytes, _AUTO_BUDGET_PER_REQUEST * self.concurrency)

    def accepted_formats(self) -> frozenset[str]:
        """The image formats this run reads (``input_formats``; JPEG and PNG always)."""
        return accepted_formats(self.input_formats)

    def address_policy(self) -> AddressPolicy:
        return AddressPolicy(
            allow_private=self.allow_private_addresses,
            allow_loopback=self.allow_loopback_addresses,
        )

    def read_options(self) -> ReadOptions:
        """How the manifest is read: what a listing keeps, and when it is garbage."""
        return ReadOptions(
            extensions=extensions_for(self.accepted_formats()),
            follow_outside_symlinks=self.follow_outside_symlinks,
            max_leading_bad_lines=self.max_leading_bad_lines,
            max_bad_line_share=self.max_bad_line_share,
        )

    def build_operations(self) -> tuple[Operation, ...]:
        return build_operations(self.operations, self.params)

    def breaker_settings(self) -> BreakerSettings:
        return BreakerSettings(
            threshold=self.breaker_threshold,
            probe_s=self.breaker_probe_s,
            probe_max_s=self.breaker_probe_max_s,
            outage_timeout_s=self.outage_timeout_s,
        )

    def spool_root(self) -> str:
        """Where an S3 output keeps the records of its open part files (see
        ``output.spool``): ``spool_dir``, else ``$XDG_CACHE_HOME/batchrek/spool``
        (``~/.cache/batchrek/spool``)."""
        if self.spool_dir:
            return os.path.abspath(os.path.expanduser(self.spool_dir))
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(cache, "batchrek", "spool")

    def redo_codes(self) -> RedoFailed:
        """The permanent failures a rerun redoes: none, every code (True), or these."""
        return redo_codes(self.redo_failed)

    def fixed_rate(self, method: str) -> float | None:
        """The TPS set for an operation, or None when the rate is found automatically."""
        if method in self.rates:
            return float(self.rates[method])
        if self.rate == "auto":
            return None
        return float(self.rate)


_AUTO_BUDGET_PER_REQUEST = 8 * 1024 * 1024
_TABLES = ("params", "rates", "bucket_regions")
_LISTS = ("operations", "input_formats")
_HINTS = get_type_hints(Settings)
_FIELDS = {f.name for f in dataclasses.fields(Settings)}
_SCALARS = sorted(_FIELDS - set(_TABLES) - {"manifest", "output"})

# The flag of each setting that has one (cli defines them; a test keeps both in step).
FLAGS: Mapping[str, str] = {
    "output": "-o",
    "operations": "--operation",
    "manifest_format": "--format",
    "region": "--region",
    "profile": "--profile",
    "endpoint_url": "--endpoint-url",
    "s3_endpoint_url": "--s3-endpoint-url",
    "concurrency": "--concurrency",
    "rate": "--rate",
    "max_attempts": "--max-attempts",
    "item_deadline_s": "--item-deadline-s",
    "outage_timeout_s": "--outage-timeout-s",
    "spool_dir": "--spool-dir",
    "resume": "--no-resume",
    "redo_failed": "--redo-failed",
    "dedupe": "--no-dedupe",
    "oversize": "--oversize",
    "staging_bucket": "--staging-bucket",
    "allow_http": "--allow-http",
    "allow_private_addresses": "--allow-private-addresses",
    "allow_loopback_addresses": "--allow-loopback-addresses",
    "input_formats": "--input-formats",
    "limit": "--limit",
    "ledger": "--ledger",
    "dry_run": "--dry-run",
    "shard_index": "--shard-index",
    "shard_count": "--shard-count",
    "peers": "--peers",
    "grace_period_s": "--grace-period-s",
    "metrics_out": "--metrics-out",
    "metrics_textfile": "--metrics-textfile",
    "pushgateway": "--pushgateway",
    "job_name": "--job-name",
    "progress": "--no-progress",
    "log_format": "--log-format",
    "log_interval_s": "--log-interval-s",
}

# Ranges: (minimum, whether the minimum itself is allowed). Floats must be finite.
_RANGES: Mapping[str, tuple[float, bool]] = {
    "concurrency": (1, True),
    "max_attempts": (1, True),
    "item_deadline_s": (0, False),
    "dedupe_cache": (1, True),
    "log_interval_s": (1.0, True),  # at most one progress line a second
    "limit": (0, True),
    "http_timeout_s": (0, False),
    "max_source_bytes": (1, True),
    "shard_index": (0, True),
    "shard_count": (1, True),
    "grace_period_s": (0, True),
    "part_records": (1, True),
    "part_seconds": (0, False),
    "peer_interval_s": (0.1, True),
    "price_per_image": (0, True),
    "outage_timeout_s": (0, False),
    "breaker_threshold": (1, True),
    "breaker_probe_s": (0, False),
    "breaker_probe_max_s": (0, False),
    "preflight_timeout_s": (0, False),
}


def name_for(setting: str) -> str:
    """How a message names a setting: the flag a user can type, and the setting."""
    flag = FLAGS.get(setting)
    if flag is not None:
        return f"{flag} (setting {setting})"
    return f"setting {setting} (BATCHREK_{setting.upper()})"


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
    if name == "redo_failed":
        try:
            return normalize_redo(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {name} {exc}") from None
    if name in _LISTS:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{where}: {name} must be a list of names")
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
        elif name in _TABLES:
            raise ConfigError(
                f"environment {key}: [{name}] is a table; set it in the --config file"
            )
        elif name in ("manifest", "output"):
            raise ConfigError(
                f"environment {key}: the {name} is given on the command line "
                f"({'MANIFEST' if name == 'manifest' else '-o'}), not in the environment"
            )
        else:
            close = difflib.get_close_matches(name, _SCALARS, n=1)
            hint = f"; did you mean BATCHREK_{close[0].upper()}?" if close else ""
            raise ConfigError(
                f"environment {key}: unknown setting {name!r}{hint} (every BATCHREK_* "
                "variable is read as a setting)"
            )
    return out


def _check_types(s: Settings) -> None:
    """A field set directly (not through ``load_settings``) has its declared type."""
    for name in _SCALARS:
        value = getattr(s, name)
        if value is None:
            continue
        coerced = _coerce(name, value, "Settings")
        same = coerced == value or (coerced != coerced and value != value)  # NaN: ranges
        if not same or isinstance(coerced, bool) != isinstance(value, bool):
            raise ConfigError(f"Settings: {name} must be {_HINTS[name]}, not {value!r}")


def _check_ranges(s: Settings) -> None:
    for name, (low, inclusive) in _RANGES.items():
        value = getattr(s, name)
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name_for(name)} must be a finite number, not {value}")
        if value < low or (value == low and not inclusive):
            bound = f"at least {low:g}" if inclusive else f"more than {low:g}"
            raise ConfigError(f"{name_for(name)} must be {bound}, not {value:g}")


def _validate(s: Settings) -> None:
    if not s.dry_run and not s.output:
        raise ConfigError("no output: pass -o results.jsonl (or s3://bucket/prefix/)")
    _check_ranges(s)
    if s.rate != "auto":
        try:
            rate = float(s.rate)
        except ValueError:
            raise ConfigError(
                f"{name_for('rate')} must be 'auto' or a number of TPS, not {s.rate!r}"
            ) from None
        if not rate > 0 or not math.isfinite(rate):
            raise ConfigError(f"{name_for('rate')} must be a positive number, not {s.rate}")
    if s.limit == 0 and not s.allow_empty:
        raise ConfigError(
            f"no items: {name_for('limit')} 0 selects nothing; set allow_empty = true (or "
            "BATCHREK_ALLOW_EMPTY=1) if a run with nothing to do is expected"
        )
    if s.max_source_bytes < 1:
        raise ConfigError(f"max_source_bytes must be at least 1, not {s.max_source_bytes}")
    if s.max_inflight_source_bytes is not None and s.max_inflight_source_bytes < s.max_source_bytes:
        raise ConfigError(
            f"max_inflight_source_bytes ({s.max_inflight_source_bytes:,}) is under "
            f"max_source_bytes ({s.max_source_bytes:,}): the largest source could never "
            "be held; raise it or lower max_source_bytes"
        )
    try:
        s.accepted_formats()
    except ValueError as exc:
        raise ConfigError(f"input_formats: {exc}") from None
    if s.max_leading_bad_lines < 0:
        raise ConfigError(f"max_leading_bad_lines must be >= 0, not {s.max_leading_bad_lines}")
    if not 0 < s.max_bad_line_share <= 1:
        raise ConfigError(f"max_bad_line_share must be in (0, 1], not {s.max_bad_line_share}")
    if s.breaker_probe_max_s < s.breaker_probe_s:
        raise ConfigError(
            f"{name_for('breaker_probe_max_s')} ({s.breaker_probe_max_s:g}) must be at least "
            f"{name_for('breaker_probe_s')} ({s.breaker_probe_s:g})"
        )
    if s.oversize == "stage" and not (s.staging_bucket or "").startswith("s3://"):
        raise ConfigError(
            f"{name_for('oversize')} stage needs {name_for('staging_bucket')} s3://bucket/prefix/"
        )
    if s.shard_count is not None:
        index = s.shard_index or 0
        if not 0 <= index < s.shard_count:
            raise ConfigError(
                f"{name_for('shard_index')} must be in 0..{s.shard_count - 1}, not {index}"
            )
    elif s.shard_index not in (None, 0):
        raise ConfigError(
            f"{name_for('shard_index')} (or JOB_COMPLETION_INDEX) is {s.shard_index} but "
            f"{name_for('shard_count')} is not set (BATCHREK_SHARD_COUNT)"
        )
    if s.peers.startswith("s3://"):
        try:
            parse_s3_prefix(s.peers)
        except S3UriError as exc:
            raise ConfigError(f"{name_for('peers')}: {exc}") from None
    elif not s.peers:
        raise ConfigError(f"{name_for('peers')} must be auto, off, a folder or s3://bucket/prefix/")
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
        where = FLAGS.get(name, "flag")
        merged[name] = value if name in ("manifest", "output") else _coerce(name, value, where)
    if "region" not in merged:
        env_region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
        if env_region:
            merged["region"] = env_region
    return Settings(**merged)
