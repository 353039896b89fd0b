"""The run stamp that orders segments: a pair's newest entry is the one in the
segment whose name sorts last, so the stamp must sort after everything the run read.

``seg-<stamp>-<shard>-<seq>``, the stamp being UTC time to the microsecond, then a
random tail that keeps runs apart: ``20261127T201117.123456Z3fa9c2``.

Time alone is not enough. Two runs of one shard can start within one tick (a quick
Job retry; the stamp had one-second resolution until 2026-11, and two nights a second
apart then sorted by their random tails), and a retry pod's clock can be behind the
clock of the pod that wrote the ledger. A run that sorts before a segment it read
would have its newer entries superseded by the older ones, and the next night would
bill those pairs again. So a stamp is never at or before the newest segment the run
loaded: ``max(now, newest + 1 us)``, as a Lamport clock orders events.

Names written before the microseconds (``...T201117Zab12cd``) are read as the end of
their second. By string a new name of the same second would sort before one of them
(``.`` < ``Z``), so a run that loaded one takes the next second: ``new_stamp`` keeps
string order and time order the same.
"""

from __future__ import annotations

import calendar
import secrets
import time
from collections.abc import Iterable

__all__ = ["new_segment_name", "new_stamp", "newest_stamp", "stamp_micros"]

_SECONDS = "%Y%m%dT%H%M%S"  # 15 characters
_MICRO = 1_000_000


def stamp_micros(stamp: str) -> int | None:
    """A stamp's time in microseconds since the epoch; None if it is not a stamp."""
    try:
        second = calendar.timegm(time.strptime(stamp[:15], _SECONDS))
    except ValueError:
        return None
    if stamp[15:16] == "." and stamp[16:22].isdigit() and stamp[22:23] == "Z":
        return second * _MICRO + int(stamp[16:22])
    if stamp[15:16] == "Z":  # the older names, to the second: the end of that second
        return second * _MICRO + _MICRO - 1
    return None


def newest_stamp(names: Iterable[str]) -> str | None:
    """The newest run stamp among segment names (``seg-<stamp>-...``), by time."""
    newest: tuple[int, str] | None = None
    for name in names:
        parts = name.split("-")
        if len(parts) < 2 or parts[0] != "seg":
            continue
        micros = stamp_micros(parts[1])
        if micros is not None and (newest is None or micros > newest[0]):
            newest = (micros, parts[1])
    return None if newest is None else newest[1]


def new_stamp(after: str | None = None, *, now_ns: int | None = None) -> str:
    """UTC now to the microsecond, but never at or before ``after`` (the newest
    stamp this run loaded), so this run's entries supersede every entry it read."""
    micros = (time.time_ns() if now_ns is None else now_ns) // 1000
    floor = stamp_micros(after) if after else None
    if floor is not None:
        micros = max(micros, floor + 1)
    second, micro = divmod(micros, _MICRO)
    return time.strftime(_SECONDS, time.gmtime(second)) + f".{micro:06d}Z" + secrets.token_hex(3)


def new_segment_name(shard: int, seq: int = 0, *, stamp: str | None = None) -> str:
    return f"seg-{stamp or new_stamp()}-{shard:04d}-{seq:06d}"
