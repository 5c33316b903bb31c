"""Fair scheduling of model compute across server sessions (start-time fair queueing on worker threads).

Every session submits its model work (an ASR chunk, a few words to translate) as small jobs, one at a time.
When a worker thread is free it takes the pending job of the session that has used the least compute so far
(seconds of worker time, measured), so a client streaming as fast as it can never delays a real-time client
by more than one bounded job: the real-time client has used less and goes first. A new session enters at the
least compute of the sessions already pending, so it neither starves the others nor is starved by them, and a
session that was idle keeps at most ``max_credit_s`` of advantage when it wakes.
Jobs of a session that is gone are cancelled before they start (:meth:`FairScheduler.cancel`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class _Job:
    key: str
    seq: int
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: Future[Any] = field(default_factory=Future)


class FairScheduler:
    """``workers`` threads running jobs of many sessions (keys), least-used session first."""

    def __init__(self, workers: int, *, name: str = "simulsub-model", max_credit_s: float = 2.0) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.max_credit_s = max_credit_s
        self._cond = threading.Condition()
        self._pending: list[_Job] = []
        self._used: dict[str, float] = {}  # seconds of worker time per session key
        self._seq = itertools.count()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    # -- submitting ------------------------------------------------------------------------------------
    def submit(self, key: str, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue ``fn(*args)`` for session ``key``; the future holds its result or exception."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the scheduler is shut down")
            floor = min((self._used[j.key] for j in self._pending if j.key != key), default=None)
            if key not in self._used:
                self._used[key] = floor if floor is not None else min(self._used.values(), default=0.0)
            elif floor is not None:  # credit banked while idle is capped: a woken session cannot monopolise
                self._used[key] = max(self._used[key], floor - self.max_credit_s)
            job = _Job(key, next(self._seq), fn, args)
            self._pending.append(job)
            self._cond.notify()
        return job.future

    async def run(self, key: str, fn: Callable[..., T], *args: Any) -> T:
        """Await ``fn(*args)`` run on a worker thread for session ``key``."""
        return await asyncio.wrap_future(self.submit(key, fn, *args))

    def cancel(self, key: str) -> int:
        """Drop the not-yet-started jobs of ``key`` (their futures are cancelled); returns how many."""
        with self._cond:
            dropped = [j for j in self._pending if j.key == key]
            self._pending = [j for j in self._pending if j.key != key]
        for j in dropped:
            j.future.cancel()
        return len(dropped)

    def forget(self, key: str) -> None:
        """The session is over: cancel its pending jobs and drop its compute account."""
        self.cancel(key)
        with self._cond:
            if not any(j.key == key for j in self._pending):
                self._used.pop(key, None)

    def used_s(self, key: str) -> float:
        """Worker seconds spent on ``key`` (relative: new keys start at the current floor)."""
        with self._cond:
            return self._used.get(key, 0.0)

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def shutdown(self) -> None:
        """Cancel pending jobs and stop the workers once their current job ends (does not wait)."""
        with self._cond:
            self._closed = True
            dropped, self._pending = self._pending, []
            self._cond.notify_all()
        for j in dropped:
            j.future.cancel()

    # -- workers ---------------------------------------------------------------------------------------
    def _next(self) -> _Job | None:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            job = min(self._pending, key=lambda j: (self._used.get(j.key, 0.0), j.seq))
            self._pending.remove(job)
            return job

    def _work(self) -> None:
        while (job := self._next()) is not None:
            if not job.future.set_running_or_notify_cancel():
                continue
            t0 = time.perf_counter()
            try:
                result = job.fn(*job.args)
            except BaseException as e:
                job.future.set_exception(e)
            else:
                job.future.set_result(result)
            finally:
                with self._cond:
                    if job.key in self._used:
                        self._used[job.key] += time.perf_counter() - t0
