"""settled_heap: the collector is tuned inside the block and restored after it."""

from __future__ import annotations

import gc

from batchrek.run.gctune import YOUNG_THRESHOLD, settled_heap


def test_settings_restored_after_the_run() -> None:
    before = gc.get_threshold()
    with settled_heap():
        inside = gc.get_threshold()
        frozen = gc.get_freeze_count()
    assert inside == (max(YOUNG_THRESHOLD, before[0]), *before[1:])
    assert frozen > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_cycles_are_still_collected_inside() -> None:
    class Node:
        other: object

    with settled_heap():
        a, b = Node(), Node()
        a.other, b.other = b, a
        del a, b
        assert gc.collect() >= 2
