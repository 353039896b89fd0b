"""What held the run back, and which knob to turn: a verdict from the run's evidence.

The verdict reads the ``--metrics-out`` document itself (``tuning_verdict(summary)``),
so it can be recomputed from any recorded run, and every number it prints is kept in
``verdict.evidence`` with the digits shown: a user can find each one in the JSON.
The checks run in this order; the first whose evidence holds names the limiter:

    too short    under MIN_ELAPSED_S or MIN_REQUESTS: nothing has settled yet
    quota        the service throttled (the only direct evidence of a quota)
    rate         no throttle, but workers waited for rate tokens: --rate auto still
                 ramping towards a quota it has not met (say so: not the quota), or
                 a fixed --rate holding the run
    concurrency  in flight sat at --concurrency (Little's law with measured latency);
                 judged only when the client had CPU to spare, because a saturated
                 event loop inflates measured latency and fills the cap by itself
    image_preparation   workers busy reading or transcoding images
    manifest_source     the manifest reader waited for the source, workers idle
    client_cpu   measured process CPU near one core (one Python process, one core)
    none         nothing saturated: the items ran out

Worker counts are what exists (``concurrency.workers``, ``concurrency.max``), never
the in-flight cap of the moment, and are clamped to it. A suggestion is always a real
``batchrek run`` flag with its value (``args``) or a config setting (``setting``);
where no setting helps, the suggestion says so instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from batchrek.observe.numbers import fmt, fmt_count, round3

__all__ = [
    "MIN_ELAPSED_S",
    "MIN_REQUESTS",
    "Limiter",
    "Verdict",
    "tuning_verdict",
    "verdict_lines",
]

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

MIN_ELAPSED_S = 10.0  # the rate controller and the latency estimate need this long
MIN_REQUESTS = 50
QUOTA_THROTTLES = 3  # at least this many throttles ...
QUOTA_SHARE = 0.001  # ... and this share of requests
TOKEN_WAIT_SHARE = 0.5  # of the workers, waiting for a rate token on average
STILL_GROWING = 1.05  # the last rate over the rate three points earlier
AT_MAX_SHARE = 0.5  # of ticks with in flight at --concurrency
IN_FLIGHT_SHARE = 0.9  # mean in flight over --concurrency
PREPARE_SHARE = 0.5  # of the workers, busy preparing images
TRANSCODE_SHARE = 0.5  # of preparation time spent transcoding
READ_WAIT_SHARE = 0.5  # of the run, the manifest reader waiting for the source
IDLE_SHARE = 0.5  # in flight below this share of --concurrency: workers were idle
CPU_CORES = 0.9  # process CPU seconds per second: one Python process is ~1 core
HEADROOM = 1.25  # extra concurrency to absorb latency jitter
GROWTH_PER_S = 0.2  # --rate auto's startup growth (call.adaptive)


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


class _Ev:
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
class _Run:
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
    ops: tuple[str, ...]
    rate_setting: str
    shards: int

    @classmethod
    def read(cls, s: Mapping[str, Any]) -> _Run:
        elapsed = float(s.get("elapsed_s") or 0.0)
        requests = int(s.get("requests") or 0)
        conc: Mapping[str, Any] = s.get("concurrency") or {}
        if not isinstance(conc, Mapping):  # an older document: the cap as a number
            conc = {}
        run = s.get("run") or {}
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
            ops=tuple(s.get("by_operation") or run.get("operations") or ()),
            rate_setting=str(run.get("rate", "auto")),
            shards=int(run.get("shard_count") or 1) if split else 1,
        )

    def op(self, name: str) -> Mapping[str, Any]:
        ops: Mapping[str, Any] = self.s.get("by_operation") or {}
        return ops.get(name) or {}

    def fixed_rate(self, name: str) -> float | None:
        rates = (self.s.get("run") or {}).get("rates") or {}
        if name in rates:
            return float(rates[name])
        return None if self.rate_setting == "auto" else float(self.rate_setting)

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
        lines.append(f"  try: {flag}" + (f" ({advice})" if advice else ""))
    elif setting:
        lines.append("  try, in the --config file: " + setting.replace("\n", "; "))
        if advice:
            lines.append(f"       ({advice})")
    elif advice:
        lines.append(f"  try: {advice}")
    return lines


def tuning_verdict(summary: Mapping[str, Any]) -> Verdict:
    """Name the one thing that limited throughput, with the arithmetic behind it."""
    x = _Run.read(summary)
    ev = _Ev()
    for check in (_too_short, _quota, _rate, _concurrency, _preparation, _source, _cpu):
        verdict = check(x, ev)
        if verdict is not None:
            return verdict
    return _none(x, ev)


def _too_short(x: _Run, ev: _Ev) -> Verdict | None:
    if x.elapsed >= MIN_ELAPSED_S and x.requests >= MIN_REQUESTS:
        return None
    text = (
        f"Too short to judge: the run lasted {ev.num('elapsed_s', x.elapsed)} s and sent "
        f"{ev.count('requests', x.requests)} requests; a verdict needs at least "
        f"{ev.num('min_elapsed_s', MIN_ELAPSED_S)} s and {ev.count('min_requests', MIN_REQUESTS)}"
        " requests, the time the rate and the latency take to settle."
    )
    advice = "run more images (a larger --limit) to get a verdict"
    return Verdict("too_short", text, advice, evidence=ev.values)


def _quota(x: _Run, ev: _Ev) -> Verdict | None:
    if x.throttled < QUOTA_THROTTLES or x.throttled < QUOTA_SHARE * x.requests:
        return None
    text = (
        f"The service throttled {ev.count('throttled', x.throttled)} of "
        f"{ev.count('requests', x.requests)} requests "
        f"({ev.pct('throttled_percent', x.throttled / x.requests)}): the account's quota "
        "is the limit."
    )
    rates: dict[str, int] = {}
    for op in x.ops:
        o = x.op(op)
        if not o.get("throttled"):
            continue
        settled = o.get("rate")
        if x.fixed_rate(op) is None and settled is not None:
            held, what = float(settled), "was held at"
        else:  # a fixed rate: what the service accepted of it
            held = (int(o.get("requests") or 0) - int(o["throttled"])) / x.elapsed
            what = "had accepted"
        text += (
            f" {_api(op)} {what} {ev.num(f'{op}.rate', held)} req/s"
            + (f" (this shard's 1/{x.shards} share)" if x.shards > 1 else "")
            + "."
        )
        rates[op] = max(1, math.floor(held * x.shards))
    auto = all(x.fixed_rate(op) is None for op in rates)
    if auto:
        advice = (
            "--rate auto found and held the quota. To go faster, ask AWS for a higher "
            f"{' / '.join(_api(op) for op in rates)} quota (Service Quotas); meanwhile "
            "the rate found can skip the search next time"
        )
    else:
        advice = (
            "the --rate set is above what the service accepts: lower it to stop wasting "
            "attempts and retry delays on throttles"
        )
    return _rate_suggestion("quota", text, advice, rates, ev)


def _rate(x: _Run, ev: _Ev) -> Verdict | None:
    if not x.workers or x.token_workers < TOKEN_WAIT_SHARE * x.workers:
        return None
    waiting = (
        f"{ev.num('token_wait_workers', x.token_workers)} of {ev.count('workers', x.workers)} "
        "workers waited for a rate token on average"
    )
    fixed = {op: r for op in x.ops if (r := x.fixed_rate(op)) is not None}
    if fixed:
        op, rate = next(iter(fixed.items()))
        more = max(rate + 1, math.floor(2 * rate))
        text = (
            f"The rate you set held the run: {_api(op)} at {ev.num('rate_set', rate)} req/s; "
            f"{waiting}, and the service throttled nothing."
        )
        return Verdict(
            "rate",
            text,
            "raise --rate if your account's quota allows it (Service Quotas shows it)",
            ("--rate", str(more)),
            evidence=ev.values,
        )
    reached: dict[str, int] = {}
    text = "No throttle: this is not the quota. "
    for op in x.ops:
        seen = x.rates(op)
        if not seen:
            continue
        first, last = seen[0], seen[-1]
        growing = len(seen) > 3 and last >= STILL_GROWING * seen[-4]
        text += (
            f"--rate auto was {'still ramping' if growing else 'searching'} for the {_api(op)} "
            f"quota: from {ev.num(f'{op}.rate_first', first)} to "
            f"{ev.num(f'{op}.rate_last', last)} req/s. "
        )
        reached[op] = max(1, math.floor(last * x.shards))
        if growing and x.max_conc and x.latency_s > 0:
            carried = x.max_conc / x.latency_s
            if carried > last:
                wait_s = math.log(carried / last) / math.log(1 + GROWTH_PER_S)
                text += (
                    f"Growing {ev.num('growth_percent_per_s', GROWTH_PER_S * 100)} %/s, it "
                    f"needs {ev.num(f'{op}.seconds_to_concurrency_rate', wait_s)} s more to "
                    f"reach {ev.num('concurrency_rate', carried)} req/s, what --concurrency "
                    f"{ev.count('concurrency_max', x.max_conc)} carries at "
                    f"{ev.num('latency_mean_s', x.latency_s)} s mean latency. "
                )
    if not reached:
        return None
    text += waiting + "."
    advice = (
        "do not ask AWS for more quota on this evidence; the service accepted the rate "
        "reached without a throttle, so start there (or at your known quota, if higher)"
    )
    return _rate_suggestion("rate", text, advice, reached, ev)


def _concurrency(x: _Run, ev: _Ev) -> Verdict | None:
    if not x.max_conc or x.cpu_cores >= CPU_CORES:
        return None
    if x.at_max < AT_MAX_SHARE and x.in_flight < IN_FLIGHT_SHARE * x.max_conc:
        return None
    rate = x.requests / x.elapsed
    in_flight = min(rate * x.latency_s, x.max_conc)
    text = (
        f"Little's law: {ev.num('requests_per_s', rate)} req/s x "
        f"{ev.num('latency_mean_s', x.latency_s)} s mean latency = "
        f"{ev.num('in_flight_mean', in_flight)} in flight, at the --concurrency cap of "
        f"{ev.count('concurrency_max', x.max_conc)} (full "
        f"{ev.pct('at_max_percent', x.at_max)} of the time). "
    )
    limits = [x.fixed_rate(op) for op in x.ops]
    if limits and all(limit is not None for limit in limits):
        target = sum(limit for limit in limits if limit is not None) / x.shards
        text += f"The rate set allows {ev.num('target_rate', target)} req/s; "
    else:
        target = 2 * rate
        text += f"Twice the rate, {ev.num('target_rate', target)} req/s, "
    needed = target * x.latency_s
    suggested = max(x.max_conc + 1, math.ceil(needed * HEADROOM))
    text += (
        f"needs {ev.num('needed_in_flight', needed)} in flight; with "
        f"{ev.num('headroom_percent', (HEADROOM - 1) * 100)} % headroom, "
        f"{ev.count('suggested_concurrency', suggested)}."
    )
    return Verdict(
        "concurrency",
        text,
        "raise --concurrency (it also sizes the HTTP connection pool and the workers)",
        ("--concurrency", str(suggested)),
        evidence=ev.values,
    )


def _preparation(x: _Run, ev: _Ev) -> Verdict | None:
    prepare_s = float((x.s.get("prepare_ms") or {}).get("seconds") or 0.0)
    if not x.workers or x.elapsed <= 0:
        return None
    busy = min(prepare_s / x.elapsed, x.workers)
    if busy < PREPARE_SHARE * x.workers:
        return None
    transcode_s = float((x.s.get("transcodes") or {}).get("seconds") or 0.0)
    text = (
        f"{ev.num('preparing_workers', busy)} of {ev.count('workers', x.workers)} workers "
        f"were busy preparing images on average ({ev.num('prepare_s', prepare_s)} s of "
        f"preparation in {ev.num('elapsed_s', x.elapsed)} s), "
    )
    if transcode_s >= TRANSCODE_SHARE * prepare_s:
        shards = x.shards * 2
        text += (
            f"{ev.num('transcode_s', transcode_s)} s of it transcoding, which uses one "
            "process per core: the machine's cores are the limit."
        )
        return Verdict(
            "image_preparation",
            text,
            f"split the run over {shards} machines (and run --shard-index 1 .. {shards - 1} "
            "on the others), or shrink the images before the run",
            ("--shard-count", str(shards), "--shard-index", "0"),
            evidence=ev.values,
        )
    more = (x.max_conc or x.workers) * 2
    text += "mostly reading or downloading them: more reads at once help."
    return Verdict(
        "image_preparation",
        text,
        "raise --concurrency: each worker reads one image at a time",
        ("--concurrency", str(more)),
        evidence=ev.values,
    )


def _source(x: _Run, ev: _Ev) -> Verdict | None:
    waited = float((x.s.get("read_wait_ms") or {}).get("seconds") or 0.0)
    if x.elapsed <= 0 or waited < READ_WAIT_SHARE * x.elapsed:
        return None
    if x.max_conc and x.in_flight >= IDLE_SHARE * x.max_conc:
        return None
    items = int(x.s.get("items") or 0)
    text = (
        f"The manifest reader waited {ev.num('read_wait_s', waited)} s of the "
        f"{ev.num('elapsed_s', x.elapsed)} s run for the source, which delivered "
        f"{ev.num('items_per_s', items / x.elapsed)} items/s; in flight averaged "
        f"{ev.num('in_flight_mean', x.in_flight)}"
        + (f" of {ev.count('concurrency_max', x.max_conc)}" if x.max_conc else "")
        + "."
    )
    return Verdict(
        "manifest_source",
        text,
        "no batchrek setting makes the source faster: read the manifest from local disk "
        "(copy it first), or use an S3 Inventory manifest.json instead of listing a prefix",
        evidence=ev.values,
    )


def _cpu(x: _Run, ev: _Ev) -> Verdict | None:
    if x.cpu_cores < CPU_CORES:
        return None
    shards = x.shards * 2
    cpu_s = float(x.s.get("cpu_s") or 0.0)
    text = (
        f"The process used {ev.num('cpu_s', cpu_s)} CPU s in {ev.num('elapsed_s', x.elapsed)} "
        f"s = {ev.num('cpu_cores', x.cpu_cores)} cores: one Python process runs on one "
        "core, so its event loop is saturated and more concurrency will not help."
    )
    return Verdict(
        "client_cpu",
        text,
        f"run {shards} processes on cores that are free, each with its own shard "
        f"(--shard-index 0 .. {shards - 1}); shard_rate_split divides the rate among them",
        ("--shard-count", str(shards), "--shard-index", "0"),
        evidence=ev.values,
    )


def _none(x: _Run, ev: _Ev) -> Verdict:
    text = (
        f"Nothing limited the run: {ev.num('in_flight_mean', x.in_flight)} in flight on "
        "average"
        + (f" of {ev.count('concurrency_max', x.max_conc)}" if x.max_conc else "")
        + f", {ev.count('throttled', x.throttled)} throttled, "
        f"{ev.num('token_wait_workers', x.token_workers)} workers waiting for a rate token: "
        "it went as fast as its items came, and they ran out."
    )
    return Verdict("none", text, evidence=ev.values)


def _rate_suggestion(
    limiter: Limiter, text: str, advice: str, rates: Mapping[str, int], ev: _Ev
) -> Verdict:
    """``--rate N`` when one rate fits every operation, else a ``[rates]`` table."""
    for op, value in rates.items():
        ev.count(f"{op}.suggested_rate", value)
    if len(set(rates.values())) == 1:
        value = next(iter(rates.values()))
        return Verdict(limiter, text, advice, ("--rate", str(value)), evidence=ev.values)
    table = "[rates]\n" + "\n".join(f"{op} = {value}" for op, value in rates.items())
    return Verdict(limiter, text, advice, setting=table, evidence=ev.values)


def _api(op: str) -> str:
    return "".join(part.title() for part in op.split("_"))
