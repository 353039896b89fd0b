"""Several ``--rate auto`` clients sharing one quota, simulated in virtual time.

The shape of a Kubernetes Indexed Job: ``clients`` processes (shards), each with its
own TokenBucket driven by its own AdaptiveRate and its own share of the images, send
to one service that admits calls through a single token bucket (the account's
quota, one second of burst, as the emulator and the service enforce it). Nobody is
told the quota or how many others there are. A throttled call is sent again, as the
retrier does; a shard ends when all its images were accepted.

This is the bench that ``scripts/bench_throughput.py`` (shards part) runs against
the real emulator, minus the processes: it answers in a fraction of a second, so the
controller's fairness can be tested on every commit and explored over many seeds.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from batchrek.call.adaptive import AdaptiveRate
from batchrek.call.control import RateControl
from batchrek.call.peers import PeerNote, PeerShare
from batchrek.call.ratelimit import TokenBucket
from batchrek.clock import FakeClock

Quota = Callable[[float], float]


class SharedQuota:
    """The service side: a token bucket of ``quota(t)`` per second, ``burst_s`` deep,
    as the service (and the emulator) enforce a TPS quota; test_adaptive.py's single
    client uses it too."""

    def __init__(self, quota: Quota, burst_s: float) -> None:
        self.quota = quota
        self.burst_s = burst_s
        self.level = max(1.0, quota(0.0) * burst_s)
        self.t = 0.0
        self.accepted = 0
        self.throttled = 0

    def admit(self, t: float) -> bool:
        q = self.quota(t)
        self.level = min(max(1.0, q * self.burst_s), self.level + (t - self.t) * q)
        self.t = t
        if self.level >= 1.0:
            self.level -= 1.0
            self.accepted += 1
            return True
        self.throttled += 1
        return False


@dataclass
class Shard:
    controller: AdaptiveRate
    bucket: TokenBucket
    todo: int
    ok: int = 0
    sends: int = 0
    throttled: int = 0
    in_flight: int = 0
    blocked: bool = False
    idle: bool = False  # all images sent; a throttled one must wake the sender
    ended: float | None = None
    rates: list[tuple[float, float]] = field(default_factory=list)  # every second
    peers: PeerShare | None = None

    @property
    def unsent(self) -> int:
        return self.todo - self.ok - self.in_flight


@dataclass
class Job:
    quota: Quota
    shards: list[Shard]
    server: SharedQuota

    @property
    def elapsed(self) -> float:
        """When the last shard ended (the job's wall time)."""
        return max(s.ended if s.ended is not None else float("inf") for s in self.shards)

    @property
    def goodput(self) -> float:
        """Accepted images over the job's wall time, as a share of a flat quota."""
        return sum(s.ok for s in self.shards) / self.elapsed / self.quota(0.0)

    @property
    def spread(self) -> float:
        """How far apart the shards ended, as a share of the job's wall time."""
        ends = [s.ended if s.ended is not None else float("inf") for s in self.shards]
        return (max(ends) - min(ends)) / max(ends)

    @property
    def throttled_share(self) -> float:
        sends = sum(s.sends for s in self.shards)
        return sum(s.throttled for s in self.shards) / max(1, sends)


def split(images: int, clients: int, seed: int) -> list[int]:
    """Images per shard as a hash split makes them: multinomial, not exactly equal."""
    rng = random.Random(seed)
    counts = [0] * clients
    for _ in range(images):
        counts[rng.randrange(clients)] += 1
    return counts


def simulate_shards(
    quota: Quota,
    *,
    clients: int = 4,
    images: int = 12_000,
    initial: float = 50.0,
    burst_s: float = 1.0,
    latency: tuple[float, float] = (0.07, 0.13),
    concurrency: int = 64,
    seed: int = 1,
    start_skew_s: float = 0.5,
    max_s: float = 1_000.0,
    counts: list[int] | None = None,
    peers: bool = False,
    note_s: float = 1.0,
    note_delay_s: float = 1.5,
    **controller: Any,
) -> Job:
    """Run ``clients`` shards of ``images`` until all end (or ``max_s`` of virtual
    time; ``counts``: images per shard instead of a hash split). Each starts at
    ``initial / clients`` (the run splits the published default across shards), up
    to ``start_skew_s`` apart as pods start. ``peers``: they exchange notes
    (``call.peers``) every ``note_s``, each read by the others ``note_delay_s`` after
    it was written."""
    rng = random.Random(seed)
    clock = FakeClock()
    server = SharedQuota(quota, burst_s)
    shards = []
    board: dict[str, list[tuple[float, PeerNote]]] = {}  # peer -> (visible at, note)
    for i, todo in enumerate(counts or split(images, clients, seed)):
        bucket = TokenBucket(initial / clients, clock=clock)
        ctrl = AdaptiveRate(initial / clients, clock=clock, target=bucket, **controller)
        shard = Shard(ctrl, bucket, todo)
        if peers:
            control = RateControl(fixed_tps=None, start_tps=initial / clients, clock=clock)
            control.bucket, control.adaptive = bucket, ctrl
            shard.peers = PeerShare(
                f"shard-{i}", {"op": control}, clock=lambda: clock.now, stale_s=5 * note_s
            )
        shards.append(shard)
    job = Job(quota, shards, server)
    events: list[tuple[float, int, str, int, bool]] = []
    seq = 0

    def push(t: float, kind: str, who: int, ok: bool = False) -> None:
        nonlocal seq
        heapq.heappush(events, (t, seq, kind, who, ok))
        seq += 1

    for i in range(clients):
        push(rng.uniform(0.0, start_skew_s), "start", i)
    push(1.0, "sample", -1)

    while events:
        t, _, kind, who, ok = heapq.heappop(events)
        if t > max_s:
            break
        clock.advance(t - clock.now)
        if kind == "sample":
            for s in shards:
                if s.ended is None:
                    s.rates.append((t, s.controller.rate))
            if any(s.ended is None for s in shards):
                push(t + 1.0, "sample", -1)
            continue
        shard = shards[who]
        if kind == "note":
            share = shard.peers
            assert share is not None
            # What each peer last wrote that is visible by now.
            visible = ([x for x in b if x[0] <= t] for b in board.values())
            latest = [vis[-1][1] for vis in visible if vis]
            share.observe(latest)
            board.setdefault(share.me, []).append(
                (t + note_delay_s, share.note(done=shard.ended is not None))
            )
            if shard.ended is None:
                push(t + note_s, "note", who)
            continue
        if kind == "start":
            # The bucket and controller were built at t=0; a pod that starts later
            # begins from the same state, as a fresh process would.
            if shard.peers is not None:
                push(t, "note", who)
            kind = "send"
        if kind == "send":
            while shard.unsent > 0 and shard.in_flight < concurrency and shard.bucket.try_acquire():
                shard.in_flight += 1
                shard.sends += 1
                push(t + rng.uniform(0.0, 0.002), "arrive", who)
            if shard.unsent <= 0:
                shard.idle = True
            elif shard.in_flight >= concurrency:
                shard.blocked = True
            else:
                push(t + max(shard.bucket.delay(), 1e-6), "send", who)
        elif kind == "arrive":
            push(t + rng.uniform(*latency), "answer", who, server.admit(t))
        else:
            shard.in_flight -= 1
            if ok:
                shard.ok += 1
                shard.controller.on_success()
                if shard.ok == shard.todo:
                    shard.ended = t
                    if shard.peers is not None:
                        push(t, "note", who)  # the last note says done
            else:
                shard.throttled += 1
                shard.controller.on_throttle()
            if shard.blocked or (shard.idle and shard.unsent > 0):
                shard.blocked = shard.idle = False
                push(t, "send", who)
    return job
