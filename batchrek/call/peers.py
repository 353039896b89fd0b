"""Processes that share one quota tell each other their rates: fair shares, fast.

Each ``--rate auto`` process finds the quota from its own throttles, which say how
much is too much for all of them together but not how to split it: left alone,
pods of one Indexed Job that start seconds apart keep most of what the earlier start
gave them, and quota a finished pod leaves waits for a probe (simulated 4 pods at an
unknown 100 TPS quota, starts 2 s apart: shards ended 15 % apart on average, up to
40 %). With notes, each throttle puts every process at the group's mean rate, and a
departing peer's rate is taken up by the rest at once (same simulation: 3.8 %, at
most 6.4 %; a lone long shard's tail 90 % -> 98 % of the quota).

A note is one small JSON object per process, rewritten every second or two where
the others can read it (``run.peers`` moves them; this module only folds them):

    {"v": 1, "peer": "shard-0003-of-0008", "wall": 1764230400.5, "done": false,
     "rates": {"detect_labels": 24.7}, "used": {"detect_labels": 24.1}}

``rates`` is each operation's rate limit, ``used`` the calls per second it really
made lately: a process with little left to do (a resumed shard skipping most of its
share) keeps a rate it does not use, so only the busy ones (using >= 70 % of their
rate) split what the quota has left beside it (each busy one's ceiling at a
throttle is the busy ones' mean rate), and a departing peer frees what it used.

The clock is the wall clock (pods on different machines share nothing else); a note
more than ``stale_s`` old is ignored, so last night's notes and a killed pod's last
note fall out on their own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from batchrek.call.control import RateControl

__all__ = ["PeerNote", "PeerShare"]

_VERSION = 1
_BUSY = 0.7  # using this share of its rate: busy (as AdaptiveRate's "keeping up")


@dataclass(frozen=True, slots=True)
class PeerNote:
    """One process's rate limits and use (req/s per operation method), at ``wall``."""

    peer: str
    wall: float
    done: bool
    rates: Mapping[str, float] = field(default_factory=dict)
    used: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "v": _VERSION,
                "peer": self.peer,
                "wall": self.wall,
                "done": self.done,
                "rates": dict(self.rates),
                "used": dict(self.used),
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> PeerNote | None:
        """The note, or None for anything that is not one (torn, foreign, newer)."""
        try:
            raw: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(raw, dict) or raw.get("v") != _VERSION:
            return None
        peer, wall, done = raw.get("peer"), raw.get("wall"), raw.get("done")
        rates, used = _per_op(raw.get("rates")), _per_op(raw.get("used", {}))
        if not isinstance(peer, str) or not isinstance(done, bool) or rates is None:
            return None
        if not isinstance(wall, (int, float)) or not math.isfinite(wall) or used is None:
            return None
        return cls(peer=peer, wall=float(wall), done=done, rates=rates, used=used)


def _per_op(raw: Any) -> dict[str, float] | None:
    """``{operation: req/s}`` keeping finite non-negative numbers; None if not a map."""
    if not isinstance(raw, dict):
        return None
    return {
        str(op): float(r)
        for op, r in raw.items()
        if isinstance(r, (int, float)) and not isinstance(r, bool) and math.isfinite(r) and r >= 0
    }


def _use(note: PeerNote, op: str) -> float:
    """What a peer used (its rate when its note is too young to say)."""
    return note.used.get(op, note.rates.get(op, 0.0))


def _freed(note: PeerNote, op: str) -> float:
    """What a departing peer leaves: its rate if it was busy, else what it used."""
    rate, use = note.rates.get(op, 0.0), _use(note, op)
    return rate if use >= _BUSY * rate else use


class PeerShare:
    """Folds the peers' notes into this process's rate controls.

    ``observe`` is called with every note read (this process's own is skipped by
    name). For each ``--rate auto`` operation it tells the controller what the busy
    processes use on average (its ceiling at the next throttle), and when a peer seen
    active last time is done or silent now, it adds this process's part of what that
    peer used, at once.
    """

    def __init__(
        self,
        me: str,
        controls: Mapping[str, RateControl],
        *,
        wall: Callable[[], float],
        stale_s: float,
    ) -> None:
        self.me = me
        self._controls = controls
        self._wall = wall
        self._stale_s = stale_s
        self._active: dict[str, PeerNote] = {}
        self.seen: set[str] = set()  # every peer ever active beside this one
        self.most = 1  # the most processes seen sharing the quota at once

    def note(self, *, done: bool = False) -> PeerNote:
        """This process's note: each ``--rate auto`` operation's rate and use."""
        rates, used = {}, {}
        for op, (rate, use) in self._own().items():
            rates[op] = rate
            if use is not None:
                used[op] = use
        return PeerNote(peer=self.me, wall=self._wall(), done=done, rates=rates, used=used)

    def _own(self) -> dict[str, tuple[float, float | None]]:
        own = {}
        for op, control in self._controls.items():
            if control.adaptive is not None and (rate := control.rate) is not None:
                own[op] = (rate, control.adaptive.used())
        return own

    def observe(self, notes: Iterable[PeerNote]) -> None:
        now = self._wall()
        active = {
            n.peer: n
            for n in notes
            if n.peer != self.me and not n.done and now - n.wall <= self._stale_s
        }
        gone = [self._active[p] for p in self._active.keys() - active.keys()]
        for op, (rate, use) in self._own().items():
            adaptive = self._controls[op].adaptive
            assert adaptive is not None
            mine = (rate, rate if use is None else use)
            group = [mine] + [(n.rates[op], _use(n, op)) for n in active.values() if op in n.rates]
            busy = [r for r, u in group if u >= _BUSY * r]
            if busy:
                adaptive.share(sum(busy) / len(busy), peers=len(group))
            freed = sum(_freed(n, op) for n in gone if op in n.rates)
            if freed > 0:
                # Every survivor adds the same part, so together they take it all.
                adaptive.take_up(freed / len(group))
        self._active = active
        self.seen.update(active)
        self.most = max(self.most, len(active) + 1)
