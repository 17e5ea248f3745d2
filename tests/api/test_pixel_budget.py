"""The process's decoded-pixel budget: reservations share it, wait for room, then give up."""

from __future__ import annotations

import asyncio

import pytest

from tigertrap.classify.api.pixel_budget import PixelBudget, PixelBudgetExhausted


def test_reservations_that_fit_together_are_held_at_once():
    async def scenario() -> int:
        budget = PixelBudget(100, wait_s=0.01)
        async with budget.reserve(60), budget.reserve(40):
            return budget.in_use

    assert asyncio.run(scenario()) == 100


def test_a_reservation_waits_for_room_and_gets_it_when_another_ends():
    async def scenario() -> list[str]:
        budget = PixelBudget(100, wait_s=30)
        order: list[str] = []
        first_held = asyncio.Event()

        async def first() -> None:
            async with budget.reserve(80):
                first_held.set()
                order.append("first decodes")
                await asyncio.sleep(0)  # the second request comes in meanwhile
                order.append("first done")

        async def second() -> None:
            await first_held.wait()
            async with budget.reserve(50):
                order.append("second decodes")

        await asyncio.gather(first(), second())
        return order

    assert asyncio.run(scenario()) == ["first decodes", "first done", "second decodes"]


def test_a_reservation_that_finds_no_room_in_time_fails_as_transient():
    async def scenario() -> None:
        budget = PixelBudget(100, wait_s=0.05)
        async with budget.reserve(90):
            with pytest.raises(PixelBudgetExhausted, match="MAX_PROCESS_PIXELS=100"):
                async with budget.reserve(20):
                    pass
        async with budget.reserve(20):  # the budget is whole again
            assert budget.in_use == 20

    asyncio.run(scenario())


def test_a_reservation_larger_than_the_whole_budget_is_a_caller_error():
    async def scenario() -> None:
        async with PixelBudget(100, wait_s=0.05).reserve(101):
            pass

    with pytest.raises(ValueError, match="never fit"):
        asyncio.run(scenario())
