"""The --rate auto controller, against a simulated quota in virtual time.

The simulation is a discrete-event loop: a client paced by the real TokenBucket
(driven by the real AdaptiveRate) sends requests with ~100 ms latency to a "server"
that admits them through its own token bucket, the way the service (and the
emulator) enforce a TPS quota. Time is a FakeClock the loop advances; 300 s of
virtual time take well under a second.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from batchrek.call.adaptive import AdaptiveRate
from batchrek.call.concurrency import ConcurrencyController
from batchrek.call.ratelimit import ConcurrencyLimit, TokenBucket
from batchrek.clock import FakeClock
from tests.call.quotasim import Quota, SharedQuota


@dataclass
class Run:
    quota: Quota
    controller: AdaptiveRate
    sends: int = 0
    throttled: int = 0
    ok_times: list[float] = field(default_factory=list)
    rates: list[tuple[float, float]] = field(default_factory=list)  # sampled every 0.25 s

    def goodput(self, t0: float, t1: float) -> float:
        """Accepted calls in [t0, t1) as a share of what the quota allowed."""
        accepted = sum(1 for t in self.ok_times if t0 <= t < t1)
        steps = round((t1 - t0) / 0.05)
        allowed = sum(self.quota(t0 + (i + 0.5) * 0.05) * 0.05 for i in range(steps))
        return accepted / allowed

    @property
    def throttled_share(self) -> float:
        return self.throttled / self.sends

    def first_time(self, after: float, ok: Callable[[float], bool]) -> float:
        """Seconds after ``after`` until the rate first satisfies ``ok``."""
        return next(t - after for t, r in self.rates if t >= after and ok(r))


def simulate(
    quota: Quota,
    seconds: float,
    *,
    initial: float,
    server_burst_s: float = 1.0,
    latency: tuple[float, float] = (0.07, 0.13),
    concurrency: int = 64,
    seed: int = 1,
    **controller: Any,
) -> Run:
    rng = random.Random(seed)
    clock = FakeClock()
    bucket = TokenBucket(initial, clock=clock)
    run = Run(quota, AdaptiveRate(initial, clock=clock, target=bucket, **controller))
    server = SharedQuota(quota, server_burst_s)
    events: list[tuple[float, int, str, bool]] = [(0.0, 0, "send", False)]
    seq = 1
    in_flight = 0
    blocked = False  # the sender waits for a free in-flight slot
    sample_at = 0.0

    def push(t: float, kind: str, ok: bool = False) -> None:
        nonlocal seq
        heapq.heappush(events, (t, seq, kind, ok))
        seq += 1

    while events:
        t, _, kind, ok = heapq.heappop(events)
        if t > seconds:
            break
        clock.advance(t - clock.now)
        while sample_at <= t:
            run.rates.append((sample_at, run.controller.rate))
            sample_at += 0.25
        if kind == "send":
            while in_flight < concurrency and bucket.try_acquire():
                in_flight += 1
                run.sends += 1
                # Arrives within 2 ms; the answer comes back after the service latency.
                push(t + rng.uniform(0.0, 0.002), "arrive")
            if in_flight >= concurrency:
                blocked = True
            else:
                push(t + max(bucket.delay(), 1e-6), "send")
        elif kind == "arrive":
            push(t + rng.uniform(*latency), "answer", server.admit(t))
        else:
            in_flight -= 1
            if ok:
                run.ok_times.append(t)
                run.controller.on_success()
            else:
                run.throttled += 1
                run.controller.on_throttle()
            if blocked:
                blocked = False
                push(t, "send")
    return run


def flat(q: float) -> Quota:
    return lambda t: q


def drop_and_back(t: float) -> float:
    return 50.0 if 100.0 <= t < 200.0 else 100.0


# -- the simulations --------------------------------------------------------------


@pytest.fixture(scope="module", params=[1.0, 0.1], ids=["server-burst-1s", "server-burst-0.1s"])
def steady(request: pytest.FixtureRequest) -> Run:
    """Start at the published default (50), against an unknown quota of 100."""
    return simulate(flat(100.0), 300.0, initial=50.0, server_burst_s=request.param)


@pytest.fixture(scope="module")
def dropping() -> Run:
    return simulate(drop_and_back, 300.0, initial=100.0, server_burst_s=0.5)


def test_converges_to_at_least_95_percent_of_an_unknown_quota(steady: Run) -> None:
    assert steady.goodput(30.0, 300.0) >= 0.95


def test_throttles_at_most_one_percent_of_requests(steady: Run) -> None:
    assert steady.throttled_share <= 0.01


def test_settles_near_the_largest_accepted_rate(steady: Run) -> None:
    assert steady.controller.settled_rate() == pytest.approx(100.0, rel=0.07)


def test_follows_a_quota_drop_within_five_seconds(dropping: Run) -> None:
    assert dropping.first_time(100.0, lambda r: r <= 55.0) <= 5.0


def test_follows_a_quota_rise_within_forty_seconds(dropping: Run) -> None:
    assert dropping.first_time(200.0, lambda r: r >= 90.0) <= 40.0


def test_holds_the_lowered_quota_once_it_has_followed_it(dropping: Run) -> None:
    assert dropping.goodput(110.0, 200.0) >= 0.93


def test_a_changing_quota_costs_at_most_two_percent_throttled(dropping: Run) -> None:
    assert dropping.throttled_share <= 0.02


def test_never_exceeds_max_rate() -> None:
    run = simulate(flat(1000.0), 60.0, initial=50.0, max_rate=60.0)
    assert max(r for _, r in run.rates) <= 60.0


def test_does_not_inflate_a_rate_that_latency_keeps_it_from_using() -> None:
    # 8 in flight x ~0.1 s latency: at most ~80 calls/s, whatever the quota.
    # Unchecked, startup growth (x1.2 a second) would reach 50 * 1.2**120 by the end.
    run = simulate(flat(1000.0), 120.0, initial=50.0, concurrency=8)
    assert run.controller.rate <= 2 * 80.0


# -- AdaptiveRate, event by event ---------------------------------------------------


class Target:
    """Records what the controller asks of its bucket."""

    def __init__(self) -> None:
        self._rate: float | None = None
        self.pauses: list[float] = []

    @property
    def rate(self) -> float | None:
        return self._rate

    @rate.setter
    def rate(self, value: float | None) -> None:
        self._rate = value

    def pause_until(self, t: float) -> None:
        self.pauses.append(t)


def feed(ctrl: AdaptiveRate, clock: FakeClock, per_second: float, seconds: float) -> None:
    """Successes at a steady rate for a while."""
    for _ in range(round(per_second * seconds)):
        clock.advance(1.0 / per_second)
        ctrl.on_success()


def test_starts_at_the_initial_rate() -> None:
    assert AdaptiveRate(50.0, clock=FakeClock()).rate == 50.0


def test_grows_while_calls_keep_up_with_the_rate() -> None:
    clock = FakeClock()
    ctrl = AdaptiveRate(10.0, clock=clock)
    feed(ctrl, clock, 10.0, 3.0)
    assert ctrl.rate > 10.0


def test_does_not_grow_while_idle() -> None:
    clock = FakeClock()
    ctrl = AdaptiveRate(10.0, clock=clock)
    clock.advance(60.0)
    assert ctrl.rate <= 10.0 * 1.2  # at most the first, unjudged, window of growth


def test_the_first_throttle_cuts_deeper_below_the_accepted_rate() -> None:
    clock = FakeClock()
    ctrl = AdaptiveRate(100.0, clock=clock)
    feed(ctrl, clock, 50.0, 2.0)  # the service accepts only ~50/s
    ctrl.on_throttle()
    assert ctrl.rate == pytest.approx(0.75 * 50.0, rel=0.05)  # leaving startup


def test_a_later_throttle_drops_the_rate_to_decrease_x_the_rate_sent() -> None:
    """A probe past the ceiling: the rate sent was too much, and unlike the accepted
    rate of a few dozen answers it carries no sampling noise."""
    clock = FakeClock()
    ctrl = AdaptiveRate(100.0, clock=clock)
    feed(ctrl, clock, 50.0, 2.0)
    ctrl.on_throttle()
    feed(ctrl, clock, 36.0, 3.0)  # keeping up with the rate (37.5/s and climbing)
    sent = ctrl.rate
    ctrl.on_throttle()
    assert ctrl.decreases == 2
    assert ctrl.ceiling == pytest.approx(sent)
    assert ctrl.rate == pytest.approx(0.9 * sent)


def test_a_later_throttle_drops_the_rate_to_decrease_x_accepted_when_the_quota_fell() -> None:
    clock = FakeClock()
    ctrl = AdaptiveRate(100.0, clock=clock)
    feed(ctrl, clock, 50.0, 2.0)
    ctrl.on_throttle()
    feed(ctrl, clock, 20.0, 6.0)  # now the service accepts ~20/s of ~37.5 sent
    ctrl.on_throttle()
    assert ctrl.decreases == 2
    assert ctrl.ceiling == pytest.approx(20.0, rel=0.05)
    assert ctrl.rate == pytest.approx(0.9 * 20.0, rel=0.05)


def test_throttles_within_one_window_decrease_once() -> None:
    clock = FakeClock()
    ctrl = AdaptiveRate(100.0, clock=clock)
    feed(ctrl, clock, 100.0, 2.0)
    for _ in range(10):
        ctrl.on_throttle()
    assert ctrl.decreases == 1


def test_throttles_in_the_next_window_decrease_again() -> None:
    clock = FakeClock()
    ctrl = AdaptiveRate(100.0, clock=clock)
    feed(ctrl, clock, 100.0, 2.0)
    ctrl.on_throttle()
    feed(ctrl, clock, 80.0, 1.0)
    ctrl.on_throttle()
    assert ctrl.decreases == 2


def test_hours_pinned_at_max_rate_stay_at_max_rate() -> None:
    clock = FakeClock()
    ctrl = AdaptiveRate(1.0, clock=clock, max_rate=1.0)
    feed(ctrl, clock, 1.0, 5000.0)  # unchecked growth would overflow a float here
    assert ctrl.rate == 1.0


def test_the_rate_never_falls_below_min_rate() -> None:
    clock = FakeClock()
    ctrl = AdaptiveRate(1.0, clock=clock, min_rate=0.5)
    for _ in range(20):
        clock.advance(1.5)
        ctrl.on_throttle()
    assert ctrl.rate == 0.5


def test_a_trickle_of_soft_throttles_does_not_decrease() -> None:
    clock = FakeClock()
    ctrl = AdaptiveRate(100.0, clock=clock)
    feed(ctrl, clock, 100.0, 2.0)
    ctrl.on_throttle(soft=True)
    assert ctrl.decreases == 0


def test_sustained_soft_throttles_decrease() -> None:
    clock = FakeClock()
    ctrl = AdaptiveRate(100.0, clock=clock)
    feed(ctrl, clock, 100.0, 2.0)
    for _ in range(10):
        clock.advance(0.01)
        ctrl.on_throttle(soft=True)
    assert ctrl.decreases == 1


def test_a_heavy_throttle_pauses_the_bucket() -> None:
    clock = FakeClock()
    target = Target()
    ctrl = AdaptiveRate(100.0, clock=clock, target=target, pause_s=0.25)
    feed(ctrl, clock, 50.0, 2.0)
    for _ in range(10):
        ctrl.on_throttle()
    assert target.pauses == [pytest.approx(clock.now + 0.25)]


def test_a_lone_probe_throttle_does_not_pause() -> None:
    clock = FakeClock()
    target = Target()
    ctrl = AdaptiveRate(100.0, clock=clock, target=target)
    feed(ctrl, clock, 100.0, 2.0)
    ctrl.on_throttle()
    assert target.pauses == []


def test_drives_the_target_rate() -> None:
    clock = FakeClock()
    target = Target()
    ctrl = AdaptiveRate(100.0, clock=clock, target=target)
    feed(ctrl, clock, 100.0, 2.0)
    ctrl.on_throttle()
    assert target.rate == ctrl.rate


def test_pause_until_reports_the_current_pause() -> None:
    clock = FakeClock()
    ctrl = AdaptiveRate(100.0, clock=clock, pause_s=0.25)
    feed(ctrl, clock, 50.0, 2.0)
    for _ in range(10):
        ctrl.on_throttle()
    assert ctrl.pause_until == pytest.approx(clock.now + 0.25)


def test_settled_rate_moves_slower_than_the_rate() -> None:
    clock = FakeClock()
    ctrl = AdaptiveRate(100.0, clock=clock)
    feed(ctrl, clock, 100.0, 5.0)
    before = ctrl.rate
    ctrl.on_throttle()
    assert ctrl.rate < ctrl.settled_rate() <= before


def test_snapshot_reports_the_counters() -> None:
    clock = FakeClock()
    ctrl = AdaptiveRate(100.0, clock=clock)
    feed(ctrl, clock, 100.0, 2.0)
    ctrl.on_throttle()
    snap = ctrl.snapshot()
    assert (snap.successes, snap.throttles, snap.decreases, snap.phase) == (200, 1, 1, "recover")


def test_repr_shows_live_state() -> None:
    ctrl = AdaptiveRate(50.0, clock=FakeClock())
    assert repr(ctrl) == (
        "<AdaptiveRate rate=50.00/s ceiling=? phase=startup ok=0 throttled=0 decreases=0>"
    )


def test_rejects_a_decrease_factor_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="decrease"):
        AdaptiveRate(50.0, clock=FakeClock(), decrease=1.5)


# -- ConcurrencyController -----------------------------------------------------------


def steady_latency(ctrl: ConcurrencyController, latency_s: float, n: int = 100) -> None:
    for _ in range(n):
        ctrl.observe(latency_s)


def test_concurrency_follows_littles_law() -> None:
    ctrl = ConcurrencyController(64, rate=lambda: 100.0)
    steady_latency(ctrl, 0.1)
    assert ctrl.limit == math.ceil(100.0 * 0.1 * 1.25) + 1


def test_concurrency_rises_with_latency() -> None:
    ctrl = ConcurrencyController(64, rate=lambda: 100.0)
    steady_latency(ctrl, 0.1)
    low = ctrl.limit
    steady_latency(ctrl, 0.4)
    assert ctrl.limit > low


def test_concurrency_never_exceeds_the_maximum() -> None:
    ctrl = ConcurrencyController(64, rate=lambda: 100.0)
    steady_latency(ctrl, 5.0)
    assert ctrl.limit == 64


def test_concurrency_never_falls_below_the_minimum() -> None:
    ctrl = ConcurrencyController(64, rate=lambda: 0.5, min_concurrency=4)
    steady_latency(ctrl, 0.01)
    assert ctrl.limit == 4


def test_latency_spread_raises_the_limit() -> None:
    steady, jittery = (ConcurrencyController(64, rate=lambda: 100.0) for _ in range(2))
    steady_latency(steady, 0.1)
    for i in range(100):
        jittery.observe(0.05 if i % 2 else 0.15)
    assert jittery.limit > steady.limit


@pytest.mark.parametrize("rate", [None, math.inf])
def test_without_a_finite_rate_the_limit_is_the_maximum(rate: float | None) -> None:
    ctrl = ConcurrencyController(64, rate=lambda: rate)
    steady_latency(ctrl, 0.1)
    assert ctrl.limit == 64


def test_concurrency_controller_drives_a_concurrency_limit() -> None:
    target = ConcurrencyLimit(64)
    ctrl = ConcurrencyController(64, rate=lambda: 100.0, target=target)
    steady_latency(ctrl, 0.1)
    assert target.limit == ctrl.limit


def test_finds_a_quota_raised_far_above_the_old_ceiling() -> None:
    """After a throttle-free plateau past the old ceiling, growth turns exponential."""
    run = simulate(lambda t: 50.0 if t < 60.0 else 200.0, 150.0, initial=50.0)
    assert run.first_time(60.0, lambda r: r >= 180.0) <= 30.0


def test_throttles_still_arriving_well_after_a_decrease_decrease_again() -> None:
    """A decrease that fell short (the service's burst inflated the measured rate)
    is corrected before the window ends."""
    clock = FakeClock()
    ctrl = AdaptiveRate(100.0, clock=clock)
    feed(ctrl, clock, 100.0, 2.0)
    ctrl.on_throttle()
    first = ctrl.rate
    clock.advance(0.5)
    for _ in range(3):
        ctrl.on_throttle()
    assert ctrl.rate < first
