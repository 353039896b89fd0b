"""The run stamp that orders segments: a pair's newest entry is the one in the
segment whose name sorts last, so the stamp must sort after everything the run read.

``seg-<stamp>-<shard>-<seq>``, the stamp a ``batchrek.stamps`` run stamp.

Time alone is not enough. Two runs of one shard can start within one tick (a quick
Job retry; the stamp had one-second resolution until 2026-11, and two nights a second
apart then sorted by their random tails), and a retry pod's clock can be behind the
clock of the pod that wrote the ledger. A run that sorts before a segment it read
would have its newer entries superseded by the older ones, and the next night would
bill those pairs again. So a run's stamp is ``new_stamp(newest_stamp(loaded))``:
never at or before the newest segment it loaded.
"""

from __future__ import annotations

from collections.abc import Iterable

from batchrek.stamps import new_stamp, stamp_micros

__all__ = ["new_segment_name", "newest_stamp"]


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


def new_segment_name(shard: int, seq: int = 0, *, stamp: str | None = None) -> str:
    return f"seg-{stamp or new_stamp()}-{shard:04d}-{seq:06d}"
