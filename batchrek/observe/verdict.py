"""What held the run back, and which knob to turn: a verdict from Little's law.

Every worker is, at any moment, doing one of: waiting for the manifest, preparing an
image, waiting for a rate token, or waiting for the service. Little's law turns each
total into a number of busy workers: ``busy = total seconds / elapsed`` (for calls,
``requests/s x mean latency``). Compared with the worker count and the quota, those
numbers name the limiter. The checks run in this order, because an earlier cause
produces the symptoms of a later one (a saturated event loop inflates measured
latency, which makes in-flight look capped):

    quota -> image_preparation -> manifest_source -> client_cpu -> concurrency -> none
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["Limiter", "Verdict", "VerdictInputs", "tuning_verdict"]

Limiter = Literal[
    "quota", "concurrency", "client_cpu", "image_preparation", "manifest_source", "none"
]

# Thresholds, as fractions. Generous on purpose: a verdict should name a clear limiter.
THROTTLE_SHARE = 0.001  # throttled attempts per attempt: above this the quota bit
AT_CEILING_SHARE = 0.5  # of the run's ticks spent at the rate ceiling
TOKEN_WAIT_SHARE = 0.5  # of worker time spent waiting for rate tokens
PREPARE_SHARE = 0.5  # of worker time spent preparing images
READ_WAIT_SHARE = 0.25  # of worker time spent waiting for the manifest source
CPU_CORES = 0.9  # process CPU seconds per second: one Python thread is ~1 core
AT_CAP_SHARE = 0.5  # of ticks with in-flight at the concurrency cap
IN_FLIGHT_SHARE = 0.9  # mean in-flight (R x L) over the cap
HEADROOM = 1.25  # extra concurrency to absorb latency jitter


@dataclass(frozen=True, slots=True)
class VerdictInputs:
    """The run's totals, as plain numbers, so tests can feed any situation."""

    elapsed_s: float
    requests: int
    throttled: int
    ok: int
    service_busy_s: float  # sum of every attempt's duration (R x L x elapsed)
    workers: int | None  # the concurrency cap; None when unknown
    at_cap_share: float = 0.0
    rate_ceiling_tps: float | None = None  # summed over operations; None = no ceiling
    at_ceiling_share: float = 0.0
    token_wait_s: float = 0.0
    prepare_s: float = 0.0
    prepared: int = 0
    read_wait_s: float = 0.0
    cpu_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Verdict:
    limiter: Limiter
    explanation: str
    flag: str

    def as_dict(self) -> dict[str, str]:
        return {"limiter": self.limiter, "explanation": self.explanation, "flag": self.flag}


def tuning_verdict(inputs: VerdictInputs) -> Verdict:
    """Name the one thing that limited throughput, with the arithmetic behind it."""
    x = inputs
    if x.elapsed_s <= 0 or (x.requests == 0 and x.prepared == 0):
        return Verdict("none", "Nothing ran long enough to judge.", "")
    elapsed = x.elapsed_s
    rate = x.requests / elapsed
    latency = x.service_busy_s / x.requests if x.requests else 0.0
    in_flight = rate * latency
    return (
        _quota(x, rate)
        or _preparation(x)
        or _manifest(x)
        or _cpu(x)
        or _concurrency(x, rate, latency, in_flight)
        or Verdict(
            "none",
            f"No limiter found: {rate:.1f} req/s x {latency:.3f} s = {in_flight:.1f} "
            f"in flight of {_cap(x.workers)} workers, no throttling, no waiting; "
            "the run was probably too short or the manifest ran out.",
            "",
        )
    )


def _quota(x: VerdictInputs, rate: float) -> Verdict | None:
    throttle_share = x.throttled / x.requests if x.requests else 0.0
    token_share = _share(x.token_wait_s, x)
    ok_rate = x.ok / x.elapsed_s
    if x.throttled and throttle_share >= THROTTLE_SHARE:
        return Verdict(
            "quota",
            f"The service throttled {x.throttled} of {x.requests} attempts "
            f"({throttle_share:.1%}) while {ok_rate:.1f} calls/s succeeded: "
            "the account's TPS quota is the limit.",
            f"raise the quota with AWS (Service Quotas), or --rate {max(1, math.floor(ok_rate))}"
            " to stop wasting attempts",
        )
    if x.rate_ceiling_tps is not None and x.at_ceiling_share >= AT_CEILING_SHARE:
        return Verdict(
            "quota",
            f"The rate controller sat at its ceiling of {x.rate_ceiling_tps:g} req/s for "
            f"{x.at_ceiling_share:.0%} of the run ({rate:.1f} req/s achieved).",
            "raise the quota with AWS, then raise --rate",
        )
    if token_share >= TOKEN_WAIT_SHARE:
        return Verdict(
            "quota",
            f"Workers spent {x.token_wait_s:.1f} s waiting for rate tokens over "
            f"{x.elapsed_s:.1f} s = {x.token_wait_s / x.elapsed_s:.1f} of "
            f"{_cap(x.workers)} workers: the configured rate is the limit.",
            "raise the quota with AWS, or --rate",
        )
    return None


def _preparation(x: VerdictInputs) -> Verdict | None:
    if not x.workers or not x.prepared:
        return None
    per_image = x.prepare_s / x.prepared
    images_per_s = x.prepared / x.elapsed_s
    busy = per_image * images_per_s
    if busy < PREPARE_SHARE * x.workers:
        return None
    return Verdict(
        "image_preparation",
        f"Preparing images takes {per_image * 1000:.1f} ms each x {images_per_s:.1f} "
        f"images/s = {busy:.1f} of {x.workers} workers busy reading or transcoding.",
        "send images already in S3 as S3Object, pre-shrink oversized images, "
        f"or raise --concurrency above {x.workers}",
    )


def _manifest(x: VerdictInputs) -> Verdict | None:
    if not x.workers:
        return None
    waiting = x.read_wait_s / x.elapsed_s
    if waiting < READ_WAIT_SHARE * x.workers:
        return None
    return Verdict(
        "manifest_source",
        f"Workers waited {x.read_wait_s:.1f} s for the manifest over {x.elapsed_s:.1f} s "
        f"= {waiting:.1f} of {x.workers} workers idle for want of items.",
        "copy the manifest next to the job, or split it and run shards (--shard i/n)",
    )


def _cpu(x: VerdictInputs) -> Verdict | None:
    cores = x.cpu_s / x.elapsed_s
    if cores < CPU_CORES:
        return None
    return Verdict(
        "client_cpu",
        f"The process used {x.cpu_s:.1f} CPU s in {x.elapsed_s:.1f} s = {cores:.2f} cores: "
        "the event loop is saturated, so more concurrency will not help.",
        "run several processes, each with its own --shard i/n",
    )


def _concurrency(x: VerdictInputs, rate: float, latency: float, in_flight: float) -> Verdict | None:
    if not x.workers:
        return None
    if x.at_cap_share < AT_CAP_SHARE and in_flight < IN_FLIGHT_SHARE * x.workers:
        return None
    if x.rate_ceiling_tps is not None and x.rate_ceiling_tps > rate:
        target = x.rate_ceiling_tps
        needed = target * latency
        advice = f"to reach {target:g} req/s needs {target:g} x {latency:.3f} s = {needed:.1f}"
    else:
        target = 2 * rate
        needed = target * latency
        advice = f"doubling to {target:.1f} req/s would need {needed:.1f}"
    suggested = max(x.workers + 1, math.ceil(needed * HEADROOM))
    return Verdict(
        "concurrency",
        f"Little's law: {rate:.1f} req/s x {latency:.3f} s mean latency = {in_flight:.1f} "
        f"in flight ~ the cap of {x.workers} (at the cap {x.at_cap_share:.0%} of the time); "
        f"{advice} in flight.",
        f"--concurrency {suggested}",
    )


def _share(seconds: float, x: VerdictInputs) -> float:
    if not x.workers:
        return 0.0
    return seconds / (x.elapsed_s * x.workers)


def _cap(workers: int | None) -> str:
    return str(workers) if workers else "?"
