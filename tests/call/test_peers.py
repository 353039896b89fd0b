"""Peers' notes folded into the rate controls (call.peers), and what that buys.

The simulations are tests/call/quotasim.py: four shards sharing one unknown 100 TPS
quota in virtual time, as in scripts/bench_throughput.py's shards part, here with
pods starting up to 2 s apart, which the controller alone does not even out.
"""

from __future__ import annotations

import statistics
from dataclasses import replace

import pytest

from batchrek.call import PeerNote, PeerShare, RateControl
from batchrek.clock import FakeClock
from tests.call.quotasim import Job, simulate_shards

SEEDS = range(1, 11)


# -- notes ---------------------------------------------------------------------------


def test_a_note_round_trips() -> None:
    note = PeerNote(
        peer="shard-0001-of-0004-9f2c41d0",
        seq=12,
        done=False,
        scope="us-east-1 https://rekognition.us-east-1.amazonaws.com",
        rates={"a": 2.5},
        used={"a": 2.0},
    )
    assert PeerNote.from_json(note.to_json()) == note


_OK = b'"peer": "p", "seq": 1, "done": false, "scope": ""'


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"[]",
        b'{"v": 2, ' + _OK + b', "rates": {}}',
        b'{"v": 1, "peer": 7, "seq": 1, "done": false, "scope": "", "rates": {}}',
        b'{"v": 1, "peer": "p", "seq": "one", "done": false, "scope": "", "rates": {}}',
        b'{"v": 1, "peer": "p", "seq": 1, "done": "no", "scope": "", "rates": {}}',
        b'{"v": 1, ' + _OK + b', "rates": {"a": 1e308}}',
        b'{"v": 1, ' + _OK + b', "rates": {"a": -1}}',
        b'{"v": 1, ' + _OK + b', "rates": {"a": "x"}}',
        b'{"v": 1, ' + _OK + b', "rates": {}, "used": {"a": true}}',
    ],
    ids=[
        "empty",
        "torn",
        "list",
        "newer-version",
        "peer-not-text",
        "seq-not-int",
        "done-not-bool",
        "absurd-rate",
        "negative-rate",
        "rate-not-number",
        "used-bool",
    ],
)
def test_anything_that_is_not_a_sane_note_is_none(data: bytes) -> None:
    assert PeerNote.from_json(data) is None


# -- PeerShare -----------------------------------------------------------------------

SCOPE = "us-east-1 http://emulator"


class Mono:
    """The reader's own monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _share(clock: FakeClock, mono: Mono, *, start: float = 20.0) -> tuple[PeerShare, RateControl]:
    control = RateControl(fixed_tps=None, start_tps=start, clock=clock)
    fixed = RateControl(fixed_tps=5.0, start_tps=5.0, clock=clock)
    share = PeerShare(
        "me", {"auto": control, "fixed": fixed}, clock=mono, stale_s=10.0, scope=SCOPE
    )
    return share, control


def _note(
    peer: str,
    seq: int,
    rate: float,
    *,
    done: bool = False,
    used: float | None = None,
    scope: str = SCOPE,
) -> PeerNote:
    return PeerNote(
        peer=peer,
        seq=seq,
        done=done,
        scope=scope,
        rates={"auto": rate},
        used={"auto": rate if used is None else used},
    )


def _live(share: PeerShare, mono: Mono, *notes: PeerNote) -> None:
    """Show the notes twice, their seq moving on: they count from then on."""
    share.observe(notes)
    mono.now += 2.0
    share.observe([replace(n, seq=n.seq + 1) for n in notes])


def test_the_own_note_carries_only_auto_rates_and_a_moving_seq() -> None:
    share, _ = _share(FakeClock(), Mono())
    first, second = share.note(), share.note(done=True)
    assert (first.peer, first.done, first.scope, dict(first.rates)) == (
        "me",
        False,
        SCOPE,
        {"auto": 20.0},
    )
    assert second.done
    assert second.seq == first.seq + 1


def _throttle_after_growth(control: RateControl, clock: FakeClock) -> None:
    """Answers at the rate asked for a while, then a throttle: the startup ends."""
    adaptive = control.adaptive
    assert adaptive is not None
    for _ in range(200):
        clock.advance(1.0 / adaptive.rate)
        adaptive.on_success()
    adaptive.on_throttle()


def _ceiling_after(*peers: PeerNote) -> float | None:
    clock, mono = FakeClock(), Mono()
    share, control = _share(clock, mono)
    if peers:
        _live(share, mono, *peers)
    _throttle_after_growth(control, clock)
    assert control.adaptive is not None
    return control.adaptive.ceiling


def test_at_a_throttle_the_ceiling_is_the_groups_mean_rate() -> None:
    shared = _ceiling_after(_note("a", 1, 60.0), _note("b", 1, 10.0))
    alone = _ceiling_after()
    # The group sent (60 + 10 + 20) / 3 = 30 each when the notes were read (times the
    # share the service accepted); alone, the controller takes its own rate, which
    # its startup grew to ~49 by the throttle.
    assert shared == pytest.approx(30.0, rel=0.2)
    assert alone == pytest.approx(48.6, rel=0.05)


def test_an_idle_peer_does_not_pull_the_busy_ones_down() -> None:
    """A resumed shard with little left keeps a rate it does not use: the busy ones
    split what is left beside it, so its rate is not part of their mean."""
    low = _ceiling_after(_note("busy", 1, 40.0), _note("idle", 1, 2.0, used=1.0))
    high = _ceiling_after(_note("busy", 1, 40.0), _note("idle", 1, 200.0, used=1.0))
    assert low == pytest.approx(high)
    assert low == pytest.approx(30.0, rel=0.2)  # (40 + 20) / 2, not / 3


def test_a_note_of_another_scope_or_of_itself_never_counts() -> None:
    other = _note("eu", 1, 5.0, scope="eu-west-1 https://rekognition.eu-west-1.amazonaws.com")
    assert _ceiling_after(other, _note("me", 1, 500.0)) == pytest.approx(_ceiling_after())


def test_a_note_that_never_changes_never_counts() -> None:
    """Last night's note, or a crashed pod's: read again and again, never live."""
    clock, mono = FakeClock(), Mono()
    share, _ = _share(clock, mono)
    for _ in range(5):
        share.observe([_note("old", 7, 500.0)])
        mono.now += 2.0
    assert share.seen == set()
    assert share.most == 1


def test_a_peer_that_says_done_leaves_its_rate_to_the_others_at_once() -> None:
    clock, mono = FakeClock(), Mono()
    share, control = _share(clock, mono)
    _live(share, mono, _note("a", 1, 30.0), _note("b", 1, 20.0))
    before = control.rate
    assert before is not None
    share.observe([_note("a", 3, 30.0, done=True), _note("b", 3, 20.0)])
    # Two busy processes are left (b and me): each takes half of a's 30.
    assert control.rate == pytest.approx(before + 15.0)
    assert share.seen == {"a", "b"}
    assert share.most == 3


def test_a_note_missing_from_one_read_changes_nothing() -> None:
    clock, mono = FakeClock(), Mono()
    share, control = _share(clock, mono)
    _live(share, mono, _note("a", 1, 30.0))
    before = control.rate
    for seq in (3, 4):
        mono.now += 2.0
        share.observe([])  # a failed GET: a's note is not in this read
        mono.now += 2.0
        share.observe([_note("a", seq, 30.0)])
    assert control.rate == before


def test_a_peer_whose_notes_stop_changing_leaves_its_rate() -> None:
    clock, mono = FakeClock(), Mono()
    share, control = _share(clock, mono)
    _live(share, mono, _note("a", 1, 30.0))
    before = control.rate
    assert before is not None
    mono.now += 11.0
    share.observe([_note("a", 2, 30.0)])  # the last note it wrote, read again
    assert control.rate == pytest.approx(before + 30.0)


def test_a_restarted_peer_counts_again_once_its_new_notes_move() -> None:
    clock, mono = FakeClock(), Mono()
    share, _ = _share(clock, mono)
    _live(share, mono, _note("a", 1, 30.0))
    share.observe([_note("a", 3, 30.0, done=True)])  # SIGTERM: its last note
    assert share.most == 2
    share.observe([_note("a", 900, 10.0)])  # the new pod's first note: a new seq
    mono.now += 2.0
    share.observe([_note("a", 901, 10.0)])
    _throttle_after_growth(share._controls["auto"], clock)
    adaptive = share._controls["auto"].adaptive
    assert adaptive is not None
    assert adaptive.ceiling is not None
    assert adaptive.ceiling < 40.0  # shared with the new pod again, not alone (~49)


def test_idle_survivors_leave_a_departed_peers_share_to_the_busy_ones() -> None:
    clock, mono = FakeClock(), Mono()
    share, control = _share(clock, mono)
    _live(share, mono, _note("a", 1, 30.0), _note("idle", 1, 25.0, used=0.5))
    before = control.rate
    assert before is not None
    share.observe([_note("a", 3, 30.0, done=True), _note("idle", 3, 25.0, used=0.5)])
    assert control.rate == pytest.approx(before + 30.0)  # me: the only busy one left


def test_a_departing_idle_peer_frees_only_what_it_used() -> None:
    clock, mono = FakeClock(), Mono()
    share, control = _share(clock, mono)
    _live(share, mono, _note("idle", 1, 50.0, used=3.0))
    before = control.rate
    assert before is not None
    share.observe([_note("idle", 3, 50.0, used=3.0, done=True)])
    assert control.rate == pytest.approx(before + 3.0)


def test_the_own_note_says_what_is_used_once_it_can_tell() -> None:
    clock, mono = FakeClock(), Mono()
    share, control = _share(clock, mono)
    assert share.note().used == {}  # too early to tell
    _throttle_after_growth(control, clock)
    note = share.note()
    assert 0 < note.used["auto"] <= note.rates["auto"] * 1.5


def test_a_fixed_rate_is_never_changed_by_peers() -> None:
    clock, mono = FakeClock(), Mono()
    share, _ = _share(clock, mono)
    fixed = share._controls["fixed"]
    _live(share, mono, _note("a", 1, 30.0))
    share.observe([_note("a", 3, 30.0, done=True)])
    assert (fixed.rate, fixed.adaptive) == (5.0, None)
    assert "fixed" not in share.note().rates


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
