"""The server's compute scheduling and input buffering: fair order, cancellation, credit cap, backpressure."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError

import pytest

from app.server.connection import TokenBucket
from app.server.inbox import Inbox, Work
from app.server.scheduler import FairScheduler


@pytest.fixture()
def one_worker() -> Iterator[FairScheduler]:
    sched = FairScheduler(1)
    yield sched
    sched.shutdown()


def hold(sched: FairScheduler) -> threading.Event:
    """Occupy the (only) worker until the returned event is set."""
    gate, running = threading.Event(), threading.Event()

    def wait() -> None:
        running.set()
        gate.wait(10)

    sched.submit("holder", wait)
    assert running.wait(10)
    return gate


def test_least_used_session_goes_first(one_worker: FairScheduler) -> None:
    order: list[str] = []

    def job(name: str, seconds: float) -> Callable[[], None]:
        def run() -> None:
            time.sleep(seconds)
            order.append(name)
        return run

    one_worker.submit("flood", job("warm-up", 0.1)).result(10)  # the flooding session has used compute
    gate = hold(one_worker)
    flood = [one_worker.submit("flood", job(f"f{i}", 0.05)) for i in range(3)]
    live = [one_worker.submit("live", job(f"l{i}", 0.0)) for i in range(2)]
    gate.set()
    for f in flood + live:
        f.result(10)
    # live enters at the flood session's level (it neither jumps the queue nor waits behind all of it), then
    # each of its cheap jobs runs before the next expensive one of the session that has used more
    assert order == ["warm-up", "f0", "l0", "l1", "f1", "f2"]


def test_cancel_drops_jobs_that_have_not_started(one_worker: FairScheduler) -> None:
    ran: list[int] = []
    gate = hold(one_worker)
    futures = [one_worker.submit("gone", ran.append, i) for i in range(3)]
    other = one_worker.submit("stays", ran.append, 99)
    assert one_worker.pending == 4
    assert one_worker.cancel("gone") == 3
    gate.set()
    assert other.result(10) is None
    assert ran == [99] and all(f.cancelled() for f in futures)
    with pytest.raises(CancelledError):
        futures[0].result(0)


def test_errors_reach_the_caller_and_the_worker_survives(one_worker: FairScheduler) -> None:
    def boom() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        one_worker.submit("a", boom).result(10)
    assert one_worker.submit("a", lambda: 42).result(10) == 42


def test_idle_credit_is_capped() -> None:
    sched = FairScheduler(1, max_credit_s=0.05)
    try:
        sched.submit("early", lambda: None).result(10)
        sched.submit("busy", time.sleep, 0.3).result(10)
        gate = hold(sched)
        sched.submit("busy", lambda: None)
        sched.submit("early", lambda: None)  # was idle while "busy" used 0.3 s: keeps only 0.05 s of credit
        assert sched.used_s("early") >= sched.used_s("busy") - 0.05 - 1e-9
        gate.set()
        sched.forget("early")
        assert sched.used_s("early") == 0.0
    finally:
        sched.shutdown()


def test_shutdown_cancels_pending_and_refuses_new_work() -> None:
    sched = FairScheduler(1)
    gate = hold(sched)
    pending = sched.submit("a", lambda: None)
    sched.shutdown()
    gate.set()
    assert pending.cancelled()
    with pytest.raises(RuntimeError):
        sched.submit("a", lambda: None)


def test_inbox_slices_audio_on_whole_samples_and_text_on_words() -> None:
    async def scenario() -> list[Work]:
        box = Inbox(max_audio_bytes=1 << 20, max_words=100)
        await box.put(Work("audio", audio=b"\x01" * 7))
        await box.put(Work("audio", audio=b"\x02" * 10))
        await box.put(Work("text", words=tuple("abcdefghij")))
        await box.put(Work("stop"))
        assert box.audio_bytes == 17 and box.words == 10
        out = [await box.take(6, 4) for _ in range(7)]
        assert box.audio_bytes == 0 and box.words == 0
        return out

    out = asyncio.run(scenario())
    assert [len(w.audio) for w in out[:3]] == [6, 6, 5]  # consecutive frames joined, cut at the slice size
    assert b"".join(w.audio for w in out[:3]) == b"\x01" * 7 + b"\x02" * 10
    assert [w.words for w in out[3:6]] == [tuple("abcd"), tuple("efgh"), tuple("ij")]
    assert out[6].kind == "stop"


def test_inbox_backpressure_blocks_the_reader_until_compute_catches_up() -> None:
    async def scenario() -> None:
        box = Inbox(max_audio_bytes=10, max_words=5)
        await box.put(Work("audio", audio=b"\x00" * 12))  # an item is never split or dropped on the way in
        writer = asyncio.create_task(box.put(Work("audio", audio=b"\x00" * 4)))
        await asyncio.sleep(0.01)
        assert box.blocked and not writer.done() and box.blocked_episodes == 1
        await box.take(8, 1)
        await asyncio.wait_for(writer, 1)
        assert not box.blocked and box.audio_bytes == 8
        assert await box.clear() == 2 and box.audio_bytes == 0

    asyncio.run(scenario())


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=1000.0, burst=20)
    assert bucket.take(20)
    assert not bucket.take(15)
    time.sleep(0.02)  # refills at 1000/s, never past the burst
    assert bucket.take(15)
    assert not bucket.take(21)
