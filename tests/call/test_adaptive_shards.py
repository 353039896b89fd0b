"""Four ``--rate auto`` shards sharing one unknown quota, in virtual time.

The targets are the ones ``scripts/bench_throughput.py`` (shards part) measures
against the real emulator with four processes: the job holds >= 95 % of the quota,
<= 1 % of requests are throttled, and the shards end within 10 % of each other.
One simulated job depends on its seed (which shard a throttle hits, pods starting
up to 0.5 s apart, the hash split), so the targets are held on average over ten
seeds, with a bound on the worst one.
"""

from __future__ import annotations

import statistics

import pytest

from batchrek.call.adaptive import AdaptiveRate
from batchrek.clock import FakeClock
from tests.call.quotasim import Job, simulate_shards

SEEDS = range(1, 11)


@pytest.fixture(scope="module")
def jobs() -> list[Job]:
    return [simulate_shards(lambda t: 100.0, seed=seed) for seed in SEEDS]


def test_every_job_ends(jobs: list[Job]) -> None:
    for job in jobs:
        assert all(s.ended is not None and s.ok == s.todo for s in job.shards)


def test_the_job_holds_at_least_95_percent_of_the_quota(jobs: list[Job]) -> None:
    assert statistics.mean(j.goodput for j in jobs) >= 0.95
    assert min(j.goodput for j in jobs) >= 0.90


def test_the_shards_end_within_10_percent_of_each_other(jobs: list[Job]) -> None:
    assert statistics.mean(j.spread for j in jobs) <= 0.10
    assert max(j.spread for j in jobs) <= 0.20


def test_at_most_one_percent_of_requests_are_throttled(jobs: list[Job]) -> None:
    assert max(j.throttled_share for j in jobs) <= 0.0105


def test_a_shard_takes_up_the_quota_a_finished_shard_leaves() -> None:
    """One shard has three times the images of the others: once they end, it has
    the quota alone and must find it (the exponential probe past a quiet plateau),
    not stay at a quarter of it."""
    job = simulate_shards(lambda t: 100.0, counts=[1_500, 1_500, 1_500, 4_500], seed=3)
    *others, last = job.shards
    freed = max(s.ended or 0.0 for s in others)
    tail = [r for t, r in last.rates if t > freed + 25.0]
    assert tail
    assert max(tail) >= 80.0


def _feed(ctrl: AdaptiveRate, clock: FakeClock, seconds: float) -> None:
    """Answers at the rate the controller asks for: it keeps up, so it grows."""
    end = clock.now + seconds
    while clock.now < end:
        clock.advance(1.0 / ctrl.rate)
        ctrl.on_success()


def _seconds_to_regain_the_ceiling(ctrl: AdaptiveRate, clock: FakeClock) -> float:
    ceiling = ctrl.ceiling
    assert ceiling is not None
    start = clock.now
    while ctrl.rate < 0.999 * ceiling and clock.now - start < 120.0:
        _feed(ctrl, clock, 0.05)
    return clock.now - start


def test_the_cubic_grows_in_absolute_terms_from_a_fixed_scale() -> None:
    """Two controllers that found the same scale, then thrown to different ceilings
    by a throttle: the lower one regains its ceiling sooner (a smaller gap at the
    same req/s per s**3), which is what pulls shards together. Scaled by each one's
    own ceiling, both would take the same time and keep their ratio for good."""
    regain = []
    for wait_s in (1.5, 8.0):  # the second throttle early in the recovery, or late
        clock = FakeClock()
        ctrl = AdaptiveRate(25.0, clock=clock)
        _feed(ctrl, clock, 2.0)
        ctrl.on_throttle()  # leaves startup
        _feed(ctrl, clock, wait_s)
        ctrl.on_throttle()
        regain.append(_seconds_to_regain_the_ceiling(ctrl, clock))
    early, late = regain
    assert early < 0.97 * late
