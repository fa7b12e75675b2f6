"""The upload budget: uploads together hold at most its bytes; the rest wait in order."""

from __future__ import annotations

import anyio

from voxmeter.entrypoints.http.uploads import UploadBudget


def test_uploads_that_do_not_fit_wait_in_arrival_order() -> None:
    budget = UploadBudget(100)
    log: list[str] = []

    async def upload(name: str, size: int, hold: float) -> None:
        async with budget.hold(size):
            log.append(f"+{name}")
            assert budget.free >= 0
            await anyio.sleep(hold)
            log.append(f"-{name}")

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(upload, "a", 60, 0.05)
            await anyio.sleep(0.001)
            tasks.start_soon(upload, "b", 60, 0.05)  # does not fit beside a
            await anyio.sleep(0.001)
            tasks.start_soon(upload, "c", 10, 0.01)  # fits, but waits its turn behind b
        assert budget.free == 100

    anyio.run(main)
    assert log == ["+a", "-a", "+b", "+c", "-c", "-b"]


def test_an_upload_larger_than_the_budget_runs_alone() -> None:
    budget = UploadBudget(100)

    async def main() -> None:
        async with budget.hold(10_000):
            assert budget.free == 0
        assert budget.free == 100

    anyio.run(main)


def test_a_waiting_upload_that_times_out_gives_its_place_back() -> None:
    budget = UploadBudget(100)

    async def main() -> None:
        async with budget.hold(80):
            with anyio.move_on_after(0.02) as waited:
                async with budget.hold(50):
                    raise AssertionError("granted beyond the budget")
            assert waited.cancelled_caught
            assert budget.free == 20
            async with budget.hold(20):
                assert budget.free == 0
        assert budget.free == 100

    anyio.run(main)
