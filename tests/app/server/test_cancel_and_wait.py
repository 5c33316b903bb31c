"""A connection's helper tasks end even when one swallows a cancellation (asyncio.wait_for before 3.12 can)."""

from __future__ import annotations

import asyncio

from app.server.connection import cancel_and_wait


def test_a_task_that_swallows_a_cancellation_still_ends() -> None:
    seen: list[str] = []

    async def keepalive_like() -> None:
        while True:  # what a keepalive loop does once wait_for has eaten the CancelledError meant for it
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if not seen:
                    seen.append("swallowed")
                    continue
                seen.append("ended")
                raise

    async def main() -> bool:
        task = asyncio.create_task(keepalive_like())
        await asyncio.sleep(0)
        await asyncio.wait_for(cancel_and_wait(task, retry_s=0.01), timeout=5)
        return task.cancelled()

    assert asyncio.run(main())
    assert seen == ["swallowed", "ended"]


def test_a_finished_task_and_a_failed_one_are_waited_for_quietly() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    async def main() -> tuple[bool, bool]:
        done = asyncio.create_task(asyncio.sleep(0))
        failed = asyncio.create_task(fails())
        await asyncio.sleep(0.01)
        await cancel_and_wait(done)
        await cancel_and_wait(failed)
        return done.done() and not done.cancelled(), failed.done()

    assert asyncio.run(main()) == (True, True)
