"""The circuit breaker on a fake clock: when it opens, who probes, when it closes,
and when an outage is given up on."""

from __future__ import annotations

import anyio
import pytest

from batchrek.call import Breakers, BreakerSettings, CircuitBreaker
from batchrek.clock import FakeClock
from batchrek.errors import ItemError, ServiceOutage
from batchrek.models import ErrorInfo

pytestmark = pytest.mark.anyio

DOWN = ErrorInfo("ConnectionError", "connection refused", retryable=True)
SETTINGS = BreakerSettings(threshold=3, probe_s=1.0, probe_max_s=4.0, outage_timeout_s=30.0)


def breaker(clock: FakeClock, *, fatal: bool = True) -> CircuitBreaker:
    return CircuitBreaker("the endpoint", SETTINGS, clock=clock, fatal=fatal)


def trip(b: CircuitBreaker) -> None:
    for _ in range(SETTINGS.threshold):
        b.failed(DOWN, probe=False)


async def test_failures_below_the_threshold_count_against_the_call() -> None:
    b = breaker(FakeClock())
    counted = [b.failed(DOWN, probe=False) for _ in range(SETTINGS.threshold - 1)]
    assert (counted, b.state) == ([False, False], "closed")


async def test_the_threshold_th_failure_in_a_row_opens_it_and_is_not_counted() -> None:
    b = breaker(FakeClock())
    b.failed(DOWN, probe=False)
    b.failed(DOWN, probe=False)
    assert (b.failed(DOWN, probe=False), b.state, b.trips) == (True, "open", 1)


async def test_an_answer_between_failures_resets_the_count() -> None:
    b = breaker(FakeClock())
    b.failed(DOWN, probe=False)
    b.failed(DOWN, probe=False)
    b.succeeded(probe=False)
    b.failed(DOWN, probe=False)
    assert b.state == "closed"


async def test_a_failure_of_a_call_sent_before_the_breaker_opened_is_not_counted() -> None:
    b = breaker(FakeClock())
    trip(b)
    assert b.failed(DOWN, probe=False) is True


async def test_an_open_breaker_lets_one_probe_through_after_the_probe_interval() -> None:
    clock = FakeClock()
    b = breaker(clock)
    trip(b)
    assert (await b.admit(), clock.now, b.state) == (True, SETTINGS.probe_s, "half-open")


async def test_a_closed_breaker_admits_at_once() -> None:
    clock = FakeClock()
    assert (await breaker(clock).admit(), clock.now) == (False, 0.0)


async def test_an_answered_probe_closes_it_and_releases_every_waiting_call() -> None:
    clock = FakeClock()
    b = breaker(clock)
    trip(b)
    admitted: list[bool] = []

    async def call() -> None:
        admitted.append(await b.admit())

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        b.succeeded(probe=True)
    assert (sorted(admitted), b.state) == ([False] * 4 + [True], "closed")


async def test_a_failed_probe_reopens_it_and_the_next_probe_comes_twice_as_late() -> None:
    clock = FakeClock()
    b = breaker(clock)
    trip(b)
    await b.admit()
    b.failed(DOWN, probe=True)
    start = clock.now
    await b.admit()
    assert clock.now - start == 2 * SETTINGS.probe_s


async def test_the_probe_interval_stops_growing_at_probe_max_s() -> None:
    clock = FakeClock()
    b = breaker(clock)
    trip(b)
    waits = []
    for _ in range(5):
        start = clock.now
        await b.admit()
        waits.append(clock.now - start)
        b.failed(DOWN, probe=True)
    assert waits == [1.0, 2.0, 4.0, 4.0, 4.0]


async def test_an_outage_longer_than_the_timeout_stops_the_run() -> None:
    clock = FakeClock()
    b = breaker(clock)
    trip(b)

    async def probe_for_ever() -> None:
        while True:
            await b.admit()
            b.failed(DOWN, probe=True)

    with pytest.raises(ServiceOutage, match="has not answered for"):
        await probe_for_ever()


async def test_after_giving_up_every_call_is_refused_at_once() -> None:
    clock = FakeClock()
    b = breaker(clock)
    trip(b)
    clock.advance(SETTINGS.outage_timeout_s)
    with pytest.raises(ServiceOutage):
        await b.admit()
    with pytest.raises(ServiceOutage):
        await b.admit()


async def test_a_url_host_past_its_timeout_fails_its_own_images_not_the_run() -> None:
    clock = FakeClock()
    b = breaker(clock, fatal=False)
    trip(b)
    clock.advance(SETTINGS.outage_timeout_s)
    with pytest.raises(ItemError) as raised:
        await b.admit()
    assert (raised.value.code, raised.value.retryable) == ("HostUnavailable", True)


async def test_a_cancelled_probe_hands_the_turn_to_the_next_call() -> None:
    clock = FakeClock()
    b = breaker(clock)
    trip(b)
    await b.admit()
    b.abandoned(probe=True)
    before = clock.now
    assert (await b.admit(), clock.now) == (True, before)


async def test_breakers_forget_idle_ones_past_their_bound() -> None:
    breakers = Breakers(SETTINGS, clock=FakeClock(), keep=2)
    tripped = breakers.get("a")
    trip(tripped)
    breakers.get("b")
    breakers.get("c")
    assert (len(breakers), breakers.get("a") is tripped) == (2, True)
