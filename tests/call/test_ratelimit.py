"""TokenBucket and ConcurrencyLimit; time is a FakeClock or a manually stepped clock."""

from __future__ import annotations

import math

import anyio
import pytest
from anyio.abc import TaskGroup

from batchrek.call.ratelimit import ConcurrencyLimit, TokenBucket
from batchrek.clock import FakeClock

pytestmark = pytest.mark.anyio


async def settle() -> None:
    """Let every runnable task run until it blocks again.

    (``anyio.wait_all_tasks_blocked`` would do, but polls with real 0.1 s sleeps.)
    """
    for _ in range(20):
        await anyio.lowlevel.checkpoint()


class SteppedClock:
    """A clock whose sleepers wake only when the test advances time past them.

    FakeClock jumps time forward for whoever sleeps, which is exact for one task;
    with several waiters, and to change a rate *while* one sleeps, the test must hold
    time still and step it.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, anyio.Event]] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        entry = (self.now + max(0.0, seconds), anyio.Event())
        self._sleepers.append(entry)
        try:
            await entry[1].wait()
        finally:
            self._sleepers.remove(entry)

    async def advance(self, seconds: float) -> None:
        """Move time to each sleeper's wake-up in turn, letting woken tasks run."""
        end = self.now + seconds
        while True:
            await settle()
            due = min((d for d, _ in self._sleepers), default=math.inf)
            if due > end:
                self.now = end
                return
            self.now = max(self.now, due)
            for d, event in list(self._sleepers):
                if d <= self.now:
                    event.set()


async def start_acquirers(
    tg: TaskGroup, bucket: TokenBucket, clock: SteppedClock, n: int, done: list[tuple[int, float]]
) -> None:
    async def one(i: int) -> None:
        await bucket.acquire()
        done.append((i, clock.now))

    for i in range(n):
        tg.start_soon(one, i)
        await settle()  # each joins the queue in order


# -- TokenBucket, one task (FakeClock) --------------------------------------------


async def test_first_acquire_does_not_wait() -> None:
    bucket = TokenBucket(10, clock=FakeClock())
    assert await bucket.acquire() == 0.0


async def test_acquires_are_paced_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, burst=1, clock=clock)
    for _ in range(11):
        await bucket.acquire()
    assert clock.now == pytest.approx(1.0)


async def test_acquire_returns_the_seconds_waited() -> None:
    bucket = TokenBucket(4, burst=1, clock=FakeClock())
    await bucket.acquire()
    assert await bucket.acquire() == pytest.approx(0.25)


async def test_burst_tokens_are_available_at_once() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, burst=5, clock=clock)
    for _ in range(5):
        await bucket.acquire()
    assert clock.now == 0.0


async def test_after_the_burst_the_rate_applies() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, burst=5, clock=clock)
    for _ in range(6):
        await bucket.acquire()
    assert clock.now == pytest.approx(0.1)


async def test_idle_time_refills_at_most_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, burst=3, clock=clock)
    await bucket.acquire()
    clock.advance(100.0)
    for _ in range(4):
        await bucket.acquire()
    assert clock.now == pytest.approx(100.1)


async def test_default_burst_is_a_small_fraction_of_a_second() -> None:
    assert TokenBucket(100, clock=FakeClock()).burst == pytest.approx(5.0)


@pytest.mark.parametrize("rate", [None, math.inf])
async def test_unlimited_rate_never_waits(rate: float | None) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, clock=clock)
    for _ in range(1000):
        await bucket.acquire()
    assert clock.now == 0.0


async def test_pause_holds_acquires_until_its_end() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, burst=5, clock=clock)
    bucket.pause_until(2.0)
    await bucket.acquire()
    assert clock.now == pytest.approx(2.1)


async def test_pause_holds_an_unlimited_bucket_too() -> None:
    clock = FakeClock()
    bucket = TokenBucket(None, clock=clock)
    bucket.pause_until(1.5)
    await bucket.acquire()
    assert clock.now == pytest.approx(1.5)


async def test_pause_never_shortens_an_earlier_pause() -> None:
    bucket = TokenBucket(10, clock=FakeClock())
    bucket.pause_until(3.0)
    bucket.pause_until(1.0)
    assert bucket.paused_until == 3.0


async def test_rate_change_keeps_tokens_earned_at_the_old_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, burst=10, clock=clock)
    for _ in range(10):
        await bucket.acquire()
    clock.advance(0.5)  # 5 tokens at 10/s
    bucket.rate = 1
    for _ in range(5):
        await bucket.acquire()
    assert clock.now == pytest.approx(0.5)


async def test_try_acquire_takes_a_free_token() -> None:
    bucket = TokenBucket(10, burst=1, clock=FakeClock())
    assert [bucket.try_acquire(), bucket.try_acquire()] == [True, False]


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0, clock=FakeClock())


def test_repr_shows_live_state() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, burst=2, clock=clock)
    bucket.pause_until(0.5)
    assert repr(bucket) == (
        "<TokenBucket rate=10.000/s burst=2.00 level=0.00 waiting=0 paused_for=0.500s>"
    )


# -- TokenBucket, many tasks (SteppedClock) -----------------------------------------


async def test_waiters_are_served_in_arrival_order() -> None:
    clock = SteppedClock()
    bucket = TokenBucket(10, burst=1, clock=clock)
    done: list[tuple[int, float]] = []
    async with anyio.create_task_group() as tg:
        await start_acquirers(tg, bucket, clock, 5, done)
        await clock.advance(1.0)
    assert [i for i, _ in done] == [0, 1, 2, 3, 4]


async def test_many_waiters_share_the_rate() -> None:
    clock = SteppedClock()
    bucket = TokenBucket(10, burst=1, clock=clock)
    done: list[tuple[int, float]] = []
    async with anyio.create_task_group() as tg:
        await start_acquirers(tg, bucket, clock, 5, done)
        await clock.advance(1.0)
    assert [t for _, t in done] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4], abs=1e-9)


async def test_a_faster_rate_applies_to_a_task_already_waiting() -> None:
    clock = SteppedClock()
    bucket = TokenBucket(1, burst=1, clock=clock)
    done: list[tuple[int, float]] = []
    async with anyio.create_task_group() as tg:
        await start_acquirers(tg, bucket, clock, 2, done)  # the second must wait 1 s
        await clock.advance(0.1)
        bucket.rate = 100
        await clock.advance(1.0)
    assert done[1][1] == pytest.approx(0.109)  # 0.1 token at 1/s, then 0.9 at 100/s


async def test_a_slower_rate_applies_to_a_task_already_waiting() -> None:
    clock = SteppedClock()
    bucket = TokenBucket(10, burst=1, clock=clock)
    done: list[tuple[int, float]] = []
    async with anyio.create_task_group() as tg:
        await start_acquirers(tg, bucket, clock, 2, done)  # the second must wait 0.1 s
        await clock.advance(0.05)  # half a token earned at 10/s
        bucket.rate = 1  # the other half now takes 0.5 s
        await clock.advance(1.0)
    assert done[1][1] == pytest.approx(0.55, abs=1e-9)


async def test_a_pause_applies_to_tasks_already_waiting() -> None:
    clock = SteppedClock()
    bucket = TokenBucket(10, burst=1, clock=clock)
    done: list[tuple[int, float]] = []
    async with anyio.create_task_group() as tg:
        await start_acquirers(tg, bucket, clock, 2, done)
        bucket.pause_until(0.5)
        await clock.advance(1.0)
    assert done[1][1] == pytest.approx(0.6, abs=1e-9)


async def test_try_acquire_does_not_jump_the_queue() -> None:
    clock = SteppedClock()
    bucket = TokenBucket(10, burst=1, clock=clock)
    done: list[tuple[int, float]] = []
    async with anyio.create_task_group() as tg:
        await start_acquirers(tg, bucket, clock, 2, done)
        clock.now = 0.2  # a token is free, but task 1 was first
        assert not bucket.try_acquire()
        await clock.advance(0.1)


async def test_waiting_counts_tasks_inside_acquire() -> None:
    clock = SteppedClock()
    bucket = TokenBucket(1, burst=1, clock=clock)
    done: list[tuple[int, float]] = []
    async with anyio.create_task_group() as tg:
        await start_acquirers(tg, bucket, clock, 4, done)
        waiting = bucket.waiting
        await clock.advance(3.0)
    assert waiting == 3


# -- ConcurrencyLimit ----------------------------------------------------------------


async def test_concurrency_limit_caps_tasks_in_flight() -> None:
    limit = ConcurrencyLimit(2)
    peak = 0

    async def work() -> None:
        nonlocal peak
        async with limit:
            peak = max(peak, limit.in_flight)
            await settle()

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(work)
    assert peak == 2


async def test_raising_the_limit_admits_waiters_at_once() -> None:
    limit = ConcurrencyLimit(1)
    release = anyio.Event()

    async def hold() -> None:
        async with limit:
            await release.wait()

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(hold)
        await settle()
        limit.limit = 3
        await settle()
        in_flight = limit.in_flight
        release.set()
    assert in_flight == 3


async def test_lowering_the_limit_lets_holders_finish_but_admits_nobody() -> None:
    limit = ConcurrencyLimit(3)
    release = anyio.Event()

    async def hold() -> None:
        async with limit:
            await release.wait()

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(hold)
        await settle()
        limit.limit = 1
        tg.start_soon(hold)
        await settle()
        state = (limit.in_flight, limit.waiting, limit.saturated)
        release.set()
    assert state == (3, 1, True)


async def test_a_cancelled_waiter_leaves_no_slot_behind() -> None:
    limit = ConcurrencyLimit(1)
    release = anyio.Event()

    async def hold() -> None:
        async with limit:
            await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold)
        await settle()
        tg.start_soon(hold)  # waits, and is admitted later
        await settle()
        waiter_scope = anyio.CancelScope()

        async def cancelled_waiter() -> None:
            with waiter_scope:
                async with limit:
                    raise AssertionError("never admitted")

        tg.start_soon(cancelled_waiter)
        await settle()
        waiting = limit.waiting
        waiter_scope.cancel()
        await settle()
        after_cancel = limit.waiting
        release.set()
    assert (waiting, after_cancel) == (2, 1)
    assert (limit.in_flight, limit.waiting) == (0, 0)


async def test_slots_go_to_waiters_in_arrival_order() -> None:
    limit = ConcurrencyLimit(1)
    order: list[int] = []
    gate = anyio.Event()

    async def first() -> None:
        async with limit:
            await gate.wait()

    async def then(n: int) -> None:
        async with limit:
            order.append(n)

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await settle()
        for n in range(4):
            tg.start_soon(then, n)
            await settle()
        gate.set()
    assert order == [0, 1, 2, 3]


def test_concurrency_limit_repr_shows_live_state() -> None:
    assert repr(ConcurrencyLimit(8)) == "<ConcurrencyLimit limit=8 in_flight=0 waiting=0>"
