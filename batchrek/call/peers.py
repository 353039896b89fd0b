"""Processes that share one quota tell each other their rates: fair shares, fast.

Each ``--rate auto`` process finds the quota from its own throttles, which say how
much is too much for all of them together but not how to split it: left alone,
pods of one Indexed Job that start seconds apart keep most of what the earlier start
gave them, and quota a finished pod leaves waits for a probe (simulated 4 pods at an
unknown 100 TPS quota, starts 2 s apart: shards ended 14 % apart on average, up to
29 %). With notes, each throttle puts every busy process at the busy ones' mean
rate, and a departing peer's share is taken up by the rest at once (same
simulation: 5.5 %, at most 11 %; a lone long shard's tail 90 % -> 98 % of the quota).

A note is one small JSON object per process, rewritten every ``peer_interval_s``
where the others can read it (``run.peers`` moves them; this module only folds them):

    {"v": 1, "peer": "shard-0003-of-0008-9f2c41d0", "seq": 1822, "done": false,
     "scope": "us-east-1 https://rekognition.us-east-1.amazonaws.com",
     "rates": {"detect_labels": 24.7}, "used": {"detect_labels": 24.1}}

``rates`` is each operation's rate limit, ``used`` the calls per second it really
made lately: a process with little left to do (a resumed shard skipping most of its
share) keeps a rate it does not use, so only the busy ones (using >= 70 % of their
rate) split what the quota has left beside it, and a departing peer frees what it
used. ``scope`` is the quota's (region and endpoint): notes of another are ignored.

Liveness is judged on the reader's own monotonic clock, never by comparing clocks: a
peer counts once its ``seq`` has been seen to change, and stops counting when it says
``done`` or when its ``seq`` has not changed for ``stale_s``. A note missing from one
read (a failed GET) changes nothing; last night's notes never change, so they never
count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from batchrek.call.adaptive import KEEPING_UP
from batchrek.call.control import RateControl

__all__ = ["PeerNote", "PeerShare"]

_VERSION = 1
_MAX_RATE = 1e5  # req/s: above any Rekognition quota; a note saying more is refused


@dataclass(frozen=True, slots=True)
class PeerNote:
    """One process's rate limits and use (req/s per operation method)."""

    peer: str
    seq: int
    done: bool
    scope: str = ""
    rates: Mapping[str, float] = field(default_factory=dict)
    used: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "v": _VERSION,
                "peer": self.peer,
                "seq": self.seq,
                "done": self.done,
                "scope": self.scope,
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
        peer, seq, done, scope = (raw.get(k) for k in ("peer", "seq", "done", "scope"))
        rates, used = _per_op(raw.get("rates")), _per_op(raw.get("used", {}))
        if not isinstance(peer, str) or not isinstance(done, bool) or not isinstance(scope, str):
            return None
        if not isinstance(seq, int) or isinstance(seq, bool) or rates is None or used is None:
            return None
        return cls(peer=peer, seq=seq, done=done, scope=scope, rates=rates, used=used)


def _per_op(raw: Any) -> dict[str, float] | None:
    """``{operation: req/s}``; None if not a map or a value is not a sane rate."""
    if not isinstance(raw, dict):
        return None
    out = {}
    for op, r in raw.items():
        if isinstance(r, bool) or not isinstance(r, (int, float)):
            return None
        if not (math.isfinite(r) and 0 <= r <= _MAX_RATE):
            return None
        out[str(op)] = float(r)
    return out


@dataclass
class _Seen:
    note: PeerNote
    changed: float  # the reader's monotonic time when its seq last changed
    live: bool  # its seq changed while this process watched


def _use(note: PeerNote, op: str) -> float:
    """What a peer used (its rate when its note is too young to say)."""
    return note.used.get(op, note.rates.get(op, 0.0))


def _busy(rate: float, use: float) -> bool:
    return use >= KEEPING_UP * rate


class PeerShare:
    """Folds the peers' notes into this process's rate controls.

    ``observe`` is called with the notes of each read. For each ``--rate auto``
    operation it tells the controller the busy processes' mean rate (its ceiling at
    the next throttle), and when a live peer says it is done or falls silent, the
    busy processes left each add an equal part of what it used, at once.
    """

    def __init__(
        self,
        me: str,
        controls: Mapping[str, RateControl],
        *,
        clock: Callable[[], float],
        stale_s: float,
        scope: str = "",
        first_seq: int = 0,
    ) -> None:
        self.me = me
        self.scope = scope
        self._controls = controls
        self._clock = clock
        self._stale_s = stale_s
        self._seq = first_seq
        self._notes: dict[str, _Seen] = {}
        self._active: dict[str, PeerNote] = {}
        self.seen: set[str] = set()  # every peer ever live beside this one
        self.most = 1  # the most processes seen sharing the quota at once

    def note(self, *, done: bool = False) -> PeerNote:
        """This process's next note: each ``--rate auto`` operation's rate and use."""
        self._seq += 1
        rates, used = {}, {}
        for op, (rate, use) in self._own().items():
            rates[op] = rate
            if use is not None:
                used[op] = use
        return PeerNote(
            peer=self.me, seq=self._seq, done=done, scope=self.scope, rates=rates, used=used
        )

    def _own(self) -> dict[str, tuple[float, float | None]]:
        own = {}
        for op, control in self._controls.items():
            if control.adaptive is not None and (rate := control.rate) is not None:
                own[op] = (rate, control.adaptive.used())
        return own

    def observe(self, notes: Iterable[PeerNote]) -> None:
        now = self._clock()
        for n in notes:
            if n.peer == self.me or n.scope != self.scope:
                continue
            was = self._notes.get(n.peer)
            if was is None:
                self._notes[n.peer] = _Seen(n, changed=now, live=False)
            elif n.seq != was.note.seq:
                self._notes[n.peer] = _Seen(n, changed=now, live=True)
        for peer in [p for p, s in self._notes.items() if now - s.changed > 10 * self._stale_s]:
            del self._notes[peer]  # long gone: forget it
        active = {
            p: s.note
            for p, s in self._notes.items()
            if s.live and not s.note.done and now - s.changed <= self._stale_s
        }
        gone = [self._active[p] for p in self._active.keys() - active.keys()]
        self._active = active
        self.seen.update(active)
        self.most = max(self.most, len(active) + 1)
        for op, (rate, use) in self._own().items():
            self._fold(op, rate, rate if use is None else use, active.values(), gone)

    def _fold(
        self,
        op: str,
        rate: float,
        use: float,
        active: Iterable[PeerNote],
        gone: list[PeerNote],
    ) -> None:
        adaptive = self._controls[op].adaptive
        assert adaptive is not None
        group = [(rate, use)] + [(n.rates[op], _use(n, op)) for n in active if op in n.rates]
        busy = [r for r, u in group if _busy(r, u)]
        if busy:
            adaptive.share(sum(busy) / len(busy), peers=len(group), fresh_s=self._stale_s)
        freed = sum(
            n.rates[op] if _busy(n.rates[op], _use(n, op)) else _use(n, op)
            for n in gone
            if op in n.rates
        )
        if freed > 0 and _busy(rate, use):
            # Every busy survivor adds the same part, so together they take it all.
            adaptive.take_up(freed / len(busy))
