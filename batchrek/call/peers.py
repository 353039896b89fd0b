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
     "rates": {"detect_labels": 24.7}}

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


@dataclass(frozen=True, slots=True)
class PeerNote:
    """One process's rates (req/s per operation method), as of ``wall``."""

    peer: str
    wall: float
    done: bool
    rates: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "v": _VERSION,
                "peer": self.peer,
                "wall": self.wall,
                "done": self.done,
                "rates": dict(self.rates),
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
        peer, wall, done, rates = (raw.get(k) for k in ("peer", "wall", "done", "rates"))
        if not isinstance(peer, str) or not isinstance(done, bool) or not isinstance(rates, dict):
            return None
        if not isinstance(wall, (int, float)) or not math.isfinite(wall):
            return None
        clean = {
            str(op): float(r)
            for op, r in rates.items()
            if isinstance(r, (int, float)) and math.isfinite(r) and r >= 0
        }
        return cls(peer=peer, wall=float(wall), done=done, rates=clean)


class PeerShare:
    """Folds the peers' notes into this process's rate controls.

    ``observe`` is called with every note read (this process's own is skipped by
    name). For each ``--rate auto`` operation it tells the controller the group's
    mean rate (used at its next throttle), and when a peer seen active last time is
    done or silent now, it adds this process's part of that peer's rate at once.
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
        """This process's note: the live rate of each ``--rate auto`` operation."""
        rates = {
            op: rate
            for op, control in self._controls.items()
            if control.adaptive is not None and (rate := control.rate) is not None
        }
        return PeerNote(peer=self.me, wall=self._wall(), done=done, rates=rates)

    def observe(self, notes: Iterable[PeerNote]) -> None:
        now = self._wall()
        active = {
            n.peer: n
            for n in notes
            if n.peer != self.me and not n.done and now - n.wall <= self._stale_s
        }
        gone = [self._active[p] for p in self._active.keys() - active.keys()]
        for op, control in self._controls.items():
            own = control.rate
            if control.adaptive is None or own is None:
                continue
            others = [n.rates[op] for n in active.values() if op in n.rates]
            count = len(others) + 1
            control.adaptive.share((sum(others) + own) / count, peers=count)
            freed = sum(n.rates.get(op, 0.0) for n in gone)
            if freed > 0:
                # Every survivor adds the same part, so together they take it all.
                control.adaptive.take_up(freed / count)
        self._active = active
        self.seen.update(active)
        self.most = max(self.most, len(active) + 1)
