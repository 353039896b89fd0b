"""The checks, in order; the first whose evidence holds names the limiter (see the
package docstring for the order and why)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from batchrek.observe.numbers import round3
from batchrek.observe.verdict.facts import Evidence, Facts, Limiter, Verdict, api_name

__all__ = ["MIN_ELAPSED_S", "MIN_REQUESTS", "tuning_verdict"]

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
CONTENDED_SHARE = 0.2  # of the run the loop thread waited for a core: shared CPU
HEADROOM = 1.25  # extra concurrency to absorb latency jitter
STEP_UP = 4  # the most a concurrency suggestion multiplies today's rate by
GROWTH_PER_S = 0.2  # --rate auto's startup growth (call.adaptive)


def tuning_verdict(summary: Mapping[str, Any]) -> Verdict:
    """Name the one thing that limited throughput, with the arithmetic behind it."""
    x = Facts.read(summary)
    ev = Evidence()
    for check in (_too_short, _quota, _rate, _concurrency, _preparation, _source, _cpu):
        verdict = check(x, ev)
        if verdict is not None:
            return verdict
    return _none(x, ev)


def _too_short(x: Facts, ev: Evidence) -> Verdict | None:
    if x.elapsed >= MIN_ELAPSED_S and x.requests >= MIN_REQUESTS:
        return None
    if x.requests == 0:
        return Verdict("too_short", "Nothing was sent to the service: nothing to judge.")
    text = (
        f"Too short to judge: the run lasted {ev.num('elapsed_s', x.elapsed)} s and sent "
        f"{ev.count('requests', x.requests)} requests; a verdict needs at least "
        f"{ev.num('min_elapsed_s', MIN_ELAPSED_S)} s and {ev.count('min_requests', MIN_REQUESTS)}"
        " requests, the time the rate and the latency take to settle."
    )
    advice = "run more images (a larger --limit) to get a verdict"
    return Verdict("too_short", text, advice, evidence=ev.values)


def _quota(x: Facts, ev: Evidence) -> Verdict | None:
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
        recent = float(settled) if settled is not None else x.recent_rate(op)
        if x.fixed_rate(op) is None and recent is not None:
            # What --rate auto held over the run's second half (after its search), no
            # more than the service accepted when it last throttled.
            ceiling = o.get("rate_ceiling")
            held = min(recent, float(ceiling)) if ceiling else recent
            what = (
                f"accepted {ev.num(f'{op}.rate_ceiling', float(ceiling))} req/s when it last "
                "throttled; --rate auto then held"
                if ceiling
                else "was held at"
            )
        else:  # a fixed rate: what the service accepted of it
            held = (int(o.get("requests") or 0) - int(o["throttled"])) / x.elapsed
            what = "had accepted"
        text += (
            f" {api_name(op)} {what} {ev.num(f'{op}.rate', held)} req/s"
            + (f" (this shard's 1/{x.shards} share)" if x.shards > 1 else "")
            + "."
        )
        rates[op] = max(1, math.floor(round3(held) * x.shards))  # as printed, down
    auto = all(x.fixed_rate(op) is None for op in rates)
    if auto:
        advice = (
            "--rate auto found and held the quota. To go faster, ask AWS for a higher "
            f"{' / '.join(api_name(op) for op in rates)} quota (Service Quotas); meanwhile "
            "the rate found can skip the search next time"
        )
    else:
        advice = (
            "the --rate set is above what the service accepts: lower it to stop wasting "
            "attempts and retry delays on throttles"
        )
    return _rate_suggestion("quota", text, advice, rates, ev)


def _rate(x: Facts, ev: Evidence) -> Verdict | None:
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
            f"The rate you set held the run: {api_name(op)} at {ev.num('rate_set', rate)} req/s; "
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
            f"--rate auto was {'still ramping' if growing else 'searching'} for the {api_name(op)} "
            f"quota: from {ev.num(f'{op}.rate_first', first)} to "
            f"{ev.num(f'{op}.rate_last', last)} req/s. "
        )
        reached[op] = max(1, math.floor(round3(last) * x.shards))  # as printed, down
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


def _concurrency(x: Facts, ev: Evidence) -> Verdict | None:
    if not x.max_conc or x.cpu_saturated:
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
        allowed = sum(limit for limit in limits if limit is not None) / x.shards
        # A step of at most STEP_UP, then look again: one process has its own limits.
        target = min(allowed, STEP_UP * rate)
        text += f"The rate set allows {ev.num('rate_allowed', allowed)} req/s; " + (
            f"{ev.num('step_up', STEP_UP)} times today's rate, "
            f"{ev.num('target_rate', target)} req/s, "
            if target < allowed
            else ""
        )
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


def _preparation(x: Facts, ev: Evidence) -> Verdict | None:
    prepare_s = float((x.s.get("prepare_ms") or {}).get("seconds") or 0.0)
    if not x.workers or x.elapsed <= 0 or x.cpu_saturated:
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


def _source(x: Facts, ev: Evidence) -> Verdict | None:
    waited = float((x.s.get("read_wait_ms") or {}).get("seconds") or 0.0)
    if x.elapsed <= 0 or waited < READ_WAIT_SHARE * x.elapsed or x.cpu_saturated:
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


def _cpu(x: Facts, ev: Evidence) -> Verdict | None:
    if not x.cpu_saturated:
        return None
    shards = x.shards * 2
    cpu_s = float(x.s.get("cpu_s") or 0.0)
    text = (
        f"The client's CPU: the event loop thread ran "
        f"{ev.pct('loop_run_percent', x.loop_run)} of the run and waited for a core "
        f"{ev.pct('loop_wait_percent', x.loop_wait)} of it; the process used "
        f"{ev.num('cpu_s', cpu_s)} CPU s in {ev.num('elapsed_s', x.elapsed)} s = "
        f"{ev.num('cpu_cores', x.cpu_cores)} cores. One Python process runs on one core: "
        "its event loop could not do more, so more concurrency will not help"
    )
    if x.loop_wait >= CONTENDED_SHARE:
        text += (
            ", and the core it had was shared: the machine's other work or a container "
            "CPU limit took the rest."
        )
        advice = (
            "give batchrek a core of its own (a less loaded machine, or a Kubernetes CPU "
            f"request of 1 or more), or split the run: --shard-index 0 .. {shards - 1} on "
            "machines with free cores (shard_rate_split divides the rate among them)"
        )
    else:
        text += "."
        advice = (
            f"run {shards} processes on cores that are free, each with its own shard "
            f"(--shard-index 0 .. {shards - 1}); shard_rate_split divides the rate among them"
        )
    return Verdict(
        "client_cpu",
        text,
        advice,
        ("--shard-count", str(shards), "--shard-index", "0"),
        evidence=ev.values,
    )


def _none(x: Facts, ev: Evidence) -> Verdict:
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
    limiter: Limiter, text: str, advice: str, rates: Mapping[str, int], ev: Evidence
) -> Verdict:
    """``--rate N`` when one rate fits every operation, else a ``[rates]`` table."""
    for op, value in rates.items():
        ev.count(f"{op}.suggested_rate", value)
    if len(set(rates.values())) == 1:
        value = next(iter(rates.values()))
        return Verdict(limiter, text, advice, ("--rate", str(value)), evidence=ev.values)
    table = "[rates]\n" + "\n".join(f"{op} = {value}" for op, value in rates.items())
    return Verdict(limiter, text, advice, setting=table, evidence=ev.values)
