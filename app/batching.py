"""Dynamic batching across sessions (a server's streams): model calls of many streams run as one batched call.

Every session runs its own (synchronous, deterministic) pipeline on a server thread. Where a model gives the same
answer for a request whether it runs alone or beside others, the session's call goes through a
:class:`DynamicBatcher` instead: the calling thread queues its request and waits; one batching thread takes the
oldest request, waits at most ``window_ms`` for more (or until ``max_batch`` are queued), runs them as one call and
hands every caller its own result. A session has at most one request queued at a time (its thread waits for the
answer), so its calls keep their order, and requests are served oldest first, so no session waits behind more than
the requests queued before its own.

Batched are the CTranslate2 re-translation calls (:class:`BatchedTranslator`): a batch gives bit-identical
translations to single calls (checked by the tests), and a batch of 8 beam-4 prefixes costs about half as much per
sentence as 8 calls on one CPU thread.

The server turns it on with ``serve --batching on`` (off by default). Measured on 2 CPU cores, with the asyncio load
generator (``benchmarks/results/server_batching.md``, all four configurations in one run): one unbatched process kept
32 real-time streams at a p95 caption delay ≤ 1 s, one batched process 40, and with ``--procs 2`` both kept 48.
Over four runs (``benchmarks/results/server_batching_runs.md``) batched ``--procs 2`` kept 48 every time (p95
0.67–0.77 s at 48) and the single unbatched process 32–40. At 48 streams the two processes use 1.6 of the 2 cores.

Measured and left out:

- silero-vad frames: one 32 ms frame costs 0.11 ms alone and 0.07 ms in a batch of 16, but handing each frame
  to a batching thread and back costs more than that under the interpreter lock: in one run of
  ``benchmarks.server_load``, a server that batched VAD frames and translations with one thread per session kept
  24 real-time streams where the unbatched one kept 32.
- the streaming Paraformer encoder: its int8 graph quantises activations per tensor, so a chunk's encoding would
  depend on the other chunks in its batch (outputs differ by up to 0.26), and on a CPU a batch of 8 chunks costs
  13 % less per chunk than 8 calls: not worth captions that change with the server's load.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

Req = TypeVar("Req")
Res = TypeVar("Res")


@dataclass(frozen=True)
class BatchingOptions:
    """``window_ms``: how long the oldest queued request waits for others to join its batch (ms);
    ``max_batch``: requests per model call."""

    window_ms: float = 2.0
    max_batch: int = 32

    def __post_init__(self) -> None:
        if not 0 <= self.window_ms <= 1000:
            raise ValueError(f"the batching window must be 0..1000 ms (got {self.window_ms})")
        if not 1 <= self.max_batch <= 1024:
            raise ValueError(f"the batch size must be 1..1024 (got {self.max_batch})")


@dataclass
class BatchStats:
    """What a batcher did: batches run, requests served and how many batches had each size."""

    batches: int = 0
    requests: int = 0
    sizes: Counter[int] = field(default_factory=Counter)

    @property
    def mean_size(self) -> float:
        return self.requests / self.batches if self.batches else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"batches": self.batches, "requests": self.requests, "mean_size": round(self.mean_size, 2),
                "max_size": max(self.sizes, default=0)}


@dataclass
class _Pending(Generic[Req, Res]):
    request: Req
    group: Hashable
    queued: float
    future: Future[Res] = field(default_factory=Future)


class DynamicBatcher(Generic[Req, Res]):
    """Runs ``run_batch(requests) -> results`` (same length, same order) on its own thread for requests that
    callers submit from any thread; only requests of the same ``group(request)`` share a batch."""

    def __init__(self, run_batch: Callable[[list[Req]], Sequence[Res]], options: BatchingOptions | None = None, *,
                 group: Callable[[Req], Hashable] | None = None, name: str = "simulsub-batch") -> None:
        self.run_batch = run_batch
        self.options = options or BatchingOptions()
        self._group = group or (lambda _req: None)
        self._queue: deque[_Pending[Req, Res]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.stats = BatchStats()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, request: Req) -> Future[Res]:
        """Queue ``request``; the future holds its result (or the exception its batch raised)."""
        item: _Pending[Req, Res] = _Pending(request, self._group(request), time.monotonic())
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is shut down")
            self._queue.append(item)
            self._cond.notify()
        return item.future

    def __call__(self, request: Req) -> Res:
        """Submit and wait for the result (what a session's thread does)."""
        return self.submit(request).result()

    def close(self) -> None:
        """Stop after the batch in progress; requests still queued fail with ``RuntimeError``."""
        with self._cond:
            self._closed = True
            dropped = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for item in dropped:
            item.future.set_exception(RuntimeError("the batcher is shut down"))

    # -- the batching thread -----------------------------------------------------------------------------------
    def _take(self) -> list[_Pending[Req, Res]] | None:
        """The next batch: the oldest request and, after at most ``window_ms``, the queued ones of its group."""
        opts = self.options
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            head = self._queue[0]
            deadline = head.queued + opts.window_ms / 1000.0
            while not self._closed:
                same = sum(1 for it in self._queue if it.group == head.group)
                left = deadline - time.monotonic()
                if same >= opts.max_batch or left <= 0:
                    break
                self._cond.wait(left)
            if self._closed:
                return None
            batch: list[_Pending[Req, Res]] = []
            rest: deque[_Pending[Req, Res]] = deque()
            for it in self._queue:  # oldest first: the batch takes the group's oldest max_batch requests
                (batch if it.group == head.group and len(batch) < opts.max_batch else rest).append(it)
            self._queue = rest
            return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            try:
                results = list(self.run_batch([it.request for it in batch]))
                if len(results) != len(batch):
                    raise RuntimeError(f"a batch of {len(batch)} requests gave {len(results)} results")
            except BaseException as e:  # every caller of the batch gets the failure, the thread goes on
                logger.warning("a batch of %d requests failed: %s", len(batch), e)
                for it in batch:
                    it.future.set_exception(e)
                continue
            self.stats.batches += 1
            self.stats.requests += len(batch)
            self.stats.sizes[len(batch)] += 1
            for it, res in zip(batch, results, strict=True):
                it.future.set_result(res)


# -- translation ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TranslationRequest:
    """One ``translate_sentence`` call (see :class:`streaming.translator.SentenceTranslator`)."""

    source: str
    beam_size: int
    target_prefix: str
    prefix_bias_beta: float


class BatchedTranslator:
    """A CTranslate2 translator (:class:`models.marian.runtime.CT2Translator`) whose ``translate_sentence`` calls
    from many sessions run as batches; everything else is delegated unchanged."""

    def __init__(self, translator: Any, options: BatchingOptions | None = None) -> None:
        self.inner = translator
        self.batcher: DynamicBatcher[TranslationRequest, str] = DynamicBatcher(
            self._run, options, group=lambda r: (r.beam_size, r.prefix_bias_beta, bool(r.target_prefix)),
            name="simulsub-batch-mt")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def translate_sentence(self, source: str, *, beam_size: int = 4, target_prefix: str = "",
                           prefix_bias_beta: float = 0.0) -> str:
        """Same result as the wrapped translator's ``translate_sentence``, computed in a batch."""
        if not source.strip():
            return ""
        return self.batcher(TranslationRequest(source, beam_size, target_prefix, prefix_bias_beta))

    def _run(self, requests: list[TranslationRequest]) -> list[str]:
        first = requests[0]  # one group: same beam, bias and whether prefixes are given
        return self.inner.translate_sentences(
            [r.source for r in requests], beam_size=first.beam_size, prefix_bias_beta=first.prefix_bias_beta,
            target_prefixes=[r.target_prefix for r in requests] if first.target_prefix else None)

    def close(self) -> None:
        self.batcher.close()
