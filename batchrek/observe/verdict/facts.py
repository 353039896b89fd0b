"""The verdict's vocabulary: the ``Verdict`` value, the ``Evidence`` it keeps (every
printed number, under a name, with the digits printed) and ``Facts``, the numbers
of a metrics document the checks read (older documents: sane defaults)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from batchrek.observe.numbers import fmt, fmt_count, round3

__all__ = ["CPU_BUSY", "Evidence", "Facts", "Limiter", "Verdict", "api_name", "verdict_lines"]

CPU_BUSY = 0.9  # cores, or share of the run the loop thread ran or waited for a core

Limiter = Literal[
    "too_short",
    "quota",
    "rate",
    "concurrency",
    "image_preparation",
    "manifest_source",
    "client_cpu",
    "none",
]


@dataclass(frozen=True, slots=True)
class Verdict:
    limiter: Limiter
    explanation: str
    suggestion: str = ""
    args: tuple[str, ...] = ()  # flags with values, as typed after `batchrek run`
    setting: str = ""  # a TOML setting, where a flag cannot say it
    evidence: Mapping[str, float] = field(default_factory=dict)

    @property
    def flag(self) -> str:
        return " ".join(self.args)

    def as_dict(self) -> dict[str, Any]:
        return {
            "limiter": self.limiter,
            "explanation": self.explanation,
            "suggestion": self.suggestion,
            "flag": self.flag,
            "args": list(self.args),
            "setting": self.setting,
            "evidence": dict(self.evidence),
        }


class Evidence:
    """Numbers as printed, kept under a name: ``verdict.evidence`` of the JSON."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def num(self, key: str, value: float) -> str:
        self.values[key] = round3(value)
        return fmt(value)

    def count(self, key: str, value: float) -> str:
        self.values[key] = round(value)
        return fmt_count(value)

    def pct(self, key: str, share: float) -> str:
        return f"{self.num(key, share * 100)} %"


@dataclass(frozen=True, slots=True)
class Facts:
    """The summary's numbers the checks need (older documents: sane defaults)."""

    s: Mapping[str, Any]
    elapsed: float
    requests: int
    throttled: int
    workers: int | None
    max_conc: int | None
    in_flight: float
    at_max: float
    latency_s: float
    token_workers: float
    cpu_cores: float
    loop_run: float  # the event loop thread's share of the run on a core ...
    loop_wait: float  # ... and waiting for one
    ops: tuple[str, ...]
    rate_setting: str
    shards: int

    @classmethod
    def read(cls, s: Mapping[str, Any]) -> Facts:
        elapsed = float(s.get("elapsed_s") or 0.0)
        requests = int(s.get("requests") or 0)
        conc: Mapping[str, Any] = s.get("concurrency") or {}
        if not isinstance(conc, Mapping):  # an older document: the cap as a number
            conc = {}
        run = s.get("run") or {}
        loop: Mapping[str, Any] = s.get("loop") or {}
        workers = conc.get("workers")
        busy = float(s.get("service_busy_s") or 0.0)
        waited = float((s.get("token_wait_ms") or {}).get("seconds") or 0.0)
        token_workers = waited / elapsed if elapsed > 0 else 0.0
        split = bool(run.get("shard_rate_split", True))
        return cls(
            s=s,
            elapsed=elapsed,
            requests=requests,
            throttled=int(s.get("throttled") or 0),
            workers=workers,
            max_conc=conc.get("max"),
            in_flight=float(conc.get("in_flight_mean") or 0.0),
            at_max=float(conc.get("at_max_share") or 0.0),
            latency_s=busy / requests if requests else 0.0,
            token_workers=min(token_workers, workers) if workers else token_workers,
            cpu_cores=float(s.get("cpu_s") or 0.0) / elapsed if elapsed > 0 else 0.0,
            loop_run=float(loop.get("run_s") or 0.0) / elapsed if elapsed > 0 else 0.0,
            loop_wait=float(loop.get("wait_s") or 0.0) / elapsed if elapsed > 0 else 0.0,
            ops=tuple(s.get("by_operation") or run.get("operations") or ()),
            rate_setting=str(run.get("rate", "auto")),
            shards=int(run.get("shard_count") or 1) if split else 1,
        )

    @property
    def cpu_saturated(self) -> bool:
        """The client could not have done more: its process used about a core, or
        its event loop thread ran or waited for a core nearly all the time."""
        return max(self.cpu_cores, self.loop_run + self.loop_wait) >= CPU_BUSY

    def op(self, name: str) -> Mapping[str, Any]:
        ops: Mapping[str, Any] = self.s.get("by_operation") or {}
        return ops.get(name) or {}

    def fixed_rate(self, name: str) -> float | None:
        rates = (self.s.get("run") or {}).get("rates") or {}
        if name in rates:
            return float(rates[name])
        return None if self.rate_setting == "auto" else float(self.rate_setting)

    def recent_rate(self, name: str) -> float | None:
        """The median of an operation's rate over the run's second half: what it held
        once the search was over (None: no rate recorded)."""
        seen = self.rates(name)
        if not seen:
            return None
        half = sorted(seen[len(seen) // 2 :])
        return half[len(half) // 2]

    def rates(self, name: str) -> list[float]:
        rows: Sequence[Mapping[str, Any]] = self.s.get("timeline") or []
        return [r["rate"][name] for r in rows if (r.get("rate") or {}).get(name) is not None]


def verdict_lines(verdict: Mapping[str, Any]) -> list[str]:
    """The verdict in the end-of-run summary: what limited the run, and what to try."""
    if not verdict:
        return []
    lines = [f"  limited by: {verdict.get('limiter')}: {verdict.get('explanation')}"]
    flag, setting = verdict.get("flag") or "", verdict.get("setting") or ""
    advice = verdict.get("suggestion") or ""
    if flag:
        lines.append(f"  try: {flag}")
    elif setting:
        lines.append("  try, in the --config file: " + setting.replace("\n", "; "))
    if advice:
        lines.append(f"  {'why: ' if flag or setting else 'try: '}{advice}")
    return lines


def api_name(op: str) -> str:
    return "".join(part.title() for part in op.split("_"))
