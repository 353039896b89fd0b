"""ByteBudget: the bytes of every source held at once stay under one bound."""

from __future__ import annotations

import threading

import anyio
import anyio.lowlevel
import pytest

from batchrek.prepare import ByteBudget

pytestmark = pytest.mark.anyio


async def test_reservations_within_the_budget_do_not_wait() -> None:
    budget = ByteBudget(100)
    a, b = budget.lease(), budget.lease()
    await a.reserve(60)
    await b.reserve(40)
    assert (budget.used, budget.waits) == (100, 0)


async def test_a_reservation_waits_until_another_is_released() -> None:
    budget = ByteBudget(100)
    first = budget.lease()
    await first.reserve(80)
    order: list[str] = []

    async def second() -> None:
        await budget.lease().reserve(50)
        order.append("second got room")

    async with anyio.create_task_group() as tg:
        tg.start_soon(second)
        await anyio.wait_all_tasks_blocked()
        order.append("first releases")
        first.release()
    assert order == ["first releases", "second got room"]


async def test_the_peak_never_passes_the_total() -> None:
    budget = ByteBudget(1000)

    async def hold(n: int) -> None:
        lease = budget.lease()
        await lease.reserve(n)
        await anyio.lowlevel.checkpoint()
        lease.release()

    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(hold, 100 + (i * 37) % 400)
    assert budget.peak <= 1000
    assert budget.used == 0


async def test_waiters_are_served_in_order() -> None:
    budget = ByteBudget(100)
    holder = budget.lease()
    await holder.reserve(100)
    served: list[int] = []

    async def want(n: int) -> None:
        lease = budget.lease()
        await lease.reserve(n)
        served.append(n)
        lease.release()

    async with anyio.create_task_group() as tg:
        for n in (90, 10, 20):
            tg.start_soon(want, n)
            await anyio.wait_all_tasks_blocked()
        holder.release()
    assert served == [90, 10, 20]  # the big one is not starved by the small ones


async def test_a_cancelled_waiter_takes_nothing() -> None:
    budget = ByteBudget(100)
    holder = budget.lease()
    await holder.reserve(100)
    async with anyio.create_task_group() as tg:
        tg.start_soon(budget.lease().reserve, 50)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    holder.release()
    assert budget.used == 0


async def test_a_released_lease_takes_nothing_more() -> None:
    budget = ByteBudget(100)
    lease = budget.lease()
    lease.release()
    assert lease.try_reserve(10) is False
    assert budget.used == 0


async def test_try_reserve_from_another_thread_respects_waiters() -> None:
    budget = ByteBudget(100)
    holder = budget.lease()
    await holder.reserve(60)
    got: list[bool] = []

    async def waiter() -> None:
        lease = budget.lease()
        await lease.reserve(50)
        lease.release()

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        thread = threading.Thread(target=lambda: got.append(budget.lease().try_reserve(10)))
        thread.start()
        thread.join()
        holder.release()
    assert got == [False]  # 10 bytes would fit, but someone waits first


async def test_shrink_gives_back_what_a_download_did_not_need() -> None:
    budget = ByteBudget(1000)
    lease = budget.lease()
    await lease.reserve(1000)  # an undeclared size reserves the cap
    lease.shrink_to(120)
    assert (budget.used, lease.held) == (120, 120)


async def test_a_reservation_over_the_whole_budget_takes_the_budget() -> None:
    budget = ByteBudget(100)
    lease = budget.lease()
    await lease.reserve(500)
    assert budget.used == 100
