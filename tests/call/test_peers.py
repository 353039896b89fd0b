"""Peers' notes folded into the rate controls (call.peers), and what that buys.

The simulations are tests/call/quotasim.py: four shards sharing one unknown 100 TPS
quota in virtual time, as in scripts/bench_throughput.py's shards part, here with
pods starting up to 2 s apart, which the controller alone does not even out.
"""

from __future__ import annotations

import statistics

import pytest

from batchrek.call import PeerNote, PeerShare, RateControl
from batchrek.clock import FakeClock
from tests.call.quotasim import Job, simulate_shards

SEEDS = range(1, 11)


# -- notes ---------------------------------------------------------------------------


def test_a_note_round_trips() -> None:
    note = PeerNote(peer="shard-0001-of-0004", wall=1_764_230_400.5, done=False, rates={"a": 2.5})
    assert PeerNote.from_json(note.to_json()) == note


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"[]",
        b'{"v": 2, "peer": "p", "wall": 1.0, "done": false, "rates": {}}',
        b'{"v": 1, "peer": 7, "wall": 1.0, "done": false, "rates": {}}',
        b'{"v": 1, "peer": "p", "wall": "soon", "done": false, "rates": {}}',
        b'{"v": 1, "peer": "p", "wall": 1.0, "done": "no", "rates": {}}',
    ],
    ids=["empty", "torn", "list", "newer-version", "peer-not-text", "wall-not-number", "done"],
)
def test_anything_that_is_not_a_note_is_none(data: bytes) -> None:
    assert PeerNote.from_json(data) is None


def test_rates_that_are_not_finite_non_negative_numbers_are_dropped() -> None:
    data = (
        b'{"v": 1, "peer": "p", "wall": 1.0, "done": false, "rates": {"a": -1, "b": "x", "c": 3}}'
    )
    note = PeerNote.from_json(data)
    assert note is not None
    assert note.rates == {"c": 3.0}


# -- PeerShare -----------------------------------------------------------------------


class Wall:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _share(clock: FakeClock, wall: Wall, *, start: float = 20.0) -> tuple[PeerShare, RateControl]:
    control = RateControl(fixed_tps=None, start_tps=start, clock=clock)
    fixed = RateControl(fixed_tps=5.0, start_tps=5.0, clock=clock)
    share = PeerShare("me", {"auto": control, "fixed": fixed}, wall=wall, stale_s=10.0)
    return share, control


def _note(peer: str, wall: float, rate: float, *, done: bool = False) -> PeerNote:
    return PeerNote(peer=peer, wall=wall, done=done, rates={"auto": rate, "fixed": 5.0})


def test_the_own_note_carries_only_auto_rates() -> None:
    share, _ = _share(FakeClock(), Wall())
    note = share.note()
    assert (note.peer, note.done, dict(note.rates)) == ("me", False, {"auto": 20.0})
    assert share.note(done=True).done


def _throttle_after_growth(control: RateControl, clock: FakeClock) -> None:
    """Answers at the rate asked for a while, then a throttle: the startup ends."""
    adaptive = control.adaptive
    assert adaptive is not None
    for _ in range(200):
        clock.advance(1.0 / adaptive.rate)
        adaptive.on_success()
    adaptive.on_throttle()


def test_at_a_throttle_the_ceiling_is_the_groups_mean_rate() -> None:
    ceilings = []
    for peers in ([_note("a", 1_000.0, 60.0), _note("b", 1_000.0, 10.0)], []):
        clock, wall = FakeClock(), Wall()
        share, control = _share(clock, wall)
        share.observe(peers)
        _throttle_after_growth(control, clock)
        assert control.adaptive is not None
        ceilings.append(control.adaptive.ceiling)
    shared, alone = ceilings
    # The group sent (60 + 10 + 20) / 3 = 30 each when the notes were read (times the
    # share the service accepted); alone, the controller takes its own rate, which
    # its startup grew to ~49 by the throttle.
    assert shared == pytest.approx(30.0, rel=0.2)
    assert alone == pytest.approx(48.6, rel=0.05)


def test_notes_of_itself_done_peers_and_stale_peers_do_not_count() -> None:
    clock, wall = FakeClock(), Wall()
    share, _ = _share(clock, wall)
    share.observe(
        [
            _note("me", wall.now, 500.0),
            _note("done", wall.now, 500.0, done=True),
            _note("stale", wall.now - 11.0, 500.0),
        ]
    )
    assert share.seen == set()
    assert share.most == 1


def test_a_peer_that_says_done_leaves_its_rate_to_the_others_at_once() -> None:
    clock, wall = FakeClock(), Wall()
    share, control = _share(clock, wall)
    share.observe([_note("a", wall.now, 30.0), _note("b", wall.now, 20.0)])
    before = control.rate
    assert before is not None
    wall.now += 2.0
    share.observe([_note("a", wall.now, 30.0, done=True), _note("b", wall.now, 20.0)])
    # Two are left (b and me): each takes half of a's 30.
    assert control.rate == pytest.approx(before + 15.0)
    assert share.seen == {"a", "b"}
    assert share.most == 3


def test_a_peer_whose_notes_stop_leaves_its_rate_too() -> None:
    clock, wall = FakeClock(), Wall()
    share, control = _share(clock, wall)
    share.observe([_note("a", wall.now, 30.0)])
    before = control.rate
    assert before is not None
    wall.now += 11.0
    share.observe([_note("a", wall.now - 11.0, 30.0)])  # its last note, now stale
    assert control.rate == pytest.approx(before + 30.0)


def test_a_fixed_rate_is_never_changed_by_peers() -> None:
    clock, wall = FakeClock(), Wall()
    share = PeerShare(
        "me",
        {"fixed": RateControl(fixed_tps=5.0, start_tps=5.0, clock=clock)},
        wall=wall,
        stale_s=10.0,
    )
    share.observe([_note("a", wall.now, 30.0)])
    wall.now += 11.0
    share.observe([])
    assert share.note().rates == {}


# -- what it buys: four shards starting up to 2 s apart ------------------------------


@pytest.fixture(scope="module")
def staggered() -> dict[bool, list[Job]]:
    return {
        peers: [
            simulate_shards(lambda t: 100.0, seed=seed, start_skew_s=2.0, peers=peers)
            for seed in SEEDS
        ]
        for peers in (False, True)
    }


def test_with_notes_staggered_shards_end_within_10_percent(
    staggered: dict[bool, list[Job]],
) -> None:
    jobs = staggered[True]
    assert statistics.mean(j.spread for j in jobs) <= 0.08
    assert max(j.spread for j in jobs) <= 0.15


def test_with_notes_staggered_shards_hold_96_percent_of_the_quota(
    staggered: dict[bool, list[Job]],
) -> None:
    assert statistics.mean(j.goodput for j in staggered[True]) >= 0.96
    assert max(j.throttled_share for j in staggered[True]) <= 0.01


def test_notes_do_better_than_throttles_alone(staggered: dict[bool, list[Job]]) -> None:
    alone, shared = staggered[False], staggered[True]
    assert statistics.mean(j.spread for j in shared) < statistics.mean(j.spread for j in alone)
    assert statistics.mean(j.goodput for j in shared) > statistics.mean(j.goodput for j in alone)


def test_with_notes_a_long_shard_takes_up_the_others_quota_at_once() -> None:
    """Three shards end early; the fourth has the quota alone from then on."""
    job = simulate_shards(lambda t: 100.0, counts=[1_500, 1_500, 1_500, 4_500], peers=True)
    *others, last = job.shards
    freed = max(s.ended or 0.0 for s in others)
    soon = [r for t, r in last.rates if freed + 3.0 <= t <= freed + 10.0]
    assert soon
    assert min(soon) >= 70.0
    assert job.goodput >= 0.95
