from __future__ import annotations

import anyio
import pytest

from batchrek.models import Result
from batchrek.run.dedupe import Deduper


def _result(item_id: str) -> Result:
    return Result(
        id=item_id,
        source="s",
        operation="detect_labels",
        status="ok",
        input="bytes",
        attempts=1,
        latency_ms=1.0,
        response={"Labels": [{"Name": "Red"}]},
    )


@pytest.mark.anyio
async def test_first_claim_owns_the_key() -> None:
    assert await Deduper(4).claim("k") is None


@pytest.mark.anyio
async def test_a_waiter_gets_the_owners_results() -> None:
    dedupe = Deduper(4)
    await dedupe.claim("k")
    got: list[object] = []

    async def wait() -> None:
        got.append(await dedupe.claim("k"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        await anyio.wait_all_tasks_blocked()
        dedupe.release("k", {"detect_labels": _result("a")})
    assert got == [{"detect_labels": _result("a")}]


@pytest.mark.anyio
async def test_cache_is_bounded_oldest_first() -> None:
    dedupe = Deduper(2)
    for key in ("a", "b", "c"):
        await dedupe.claim(key)
        dedupe.release(key, {"detect_labels": _result(key)})
    assert await dedupe.claim("a") is None


@pytest.mark.anyio
async def test_released_without_results_lets_the_next_claim_own_it() -> None:
    dedupe = Deduper(2)
    await dedupe.claim("k")
    dedupe.release("k", None)
    assert await dedupe.claim("k") is None
