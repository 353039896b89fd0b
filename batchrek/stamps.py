"""Run stamps: the wall-clock names that order what runs write (ledger segments, S3
part files), so that a later run's files sort after an earlier run's.

A stamp is UTC time to the microsecond, then a random tail that keeps runs apart:
``20261127T201117.123456Z3fa9c2``. Part file names allow letters and digits only, so
they carry ``alnum_stamp`` of it (the dot dropped: ``20261127T201117123456Z3fa9c2``);
both forms sort the same way.

``new_stamp(after)`` is never at or before ``after``: ``max(now, after + 1 us)``, as a
Lamport clock orders events. A run passes the newest stamp it loaded, so it sorts
after everything it read even when it starts within one tick of the last run or its
clock is behind the one that wrote it (see ``ledger._stamp``).

Stamps written before the microseconds (``...T201117Zab12cd``) are read as the end of
their second. By string a new stamp of the same second would sort before one of them
(``.`` < ``Z``), so a run that loaded one takes the next second: string order and time
order stay the same.

A naming stamp read off the wall clock, never a duration: it stays on ``time`` rather
than ``batchrek.clock`` (whose monotonic time has no calendar meaning).
"""

from __future__ import annotations

import calendar
import secrets
import time

__all__ = ["alnum_stamp", "new_stamp", "stamp_micros"]

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
    if stamp[15:16] == "Z":  # the older stamps, to the second: the end of that second
        return second * _MICRO + _MICRO - 1
    return None


def new_stamp(after: str | None = None, *, now_ns: int | None = None) -> str:
    """UTC now to the microsecond, but never at or before ``after`` (the newest
    stamp this run loaded), so what this run writes supersedes what it read."""
    micros = (time.time_ns() if now_ns is None else now_ns) // 1000
    floor = stamp_micros(after) if after else None
    if floor is not None:
        micros = max(micros, floor + 1)
    second, micro = divmod(micros, _MICRO)
    return time.strftime(_SECONDS, time.gmtime(second)) + f".{micro:06d}Z" + secrets.token_hex(3)


def alnum_stamp(stamp: str) -> str:
    """The stamp in a part file name's alphabet (letters and digits)."""
    return stamp.replace(".", "")
