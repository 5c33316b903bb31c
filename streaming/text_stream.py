"""Feed a text sentence to a policy one source word per step and record what a user would see."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from streaming.caption import CaptionState
from streaming.clock import DEFAULT_WORD_MS, SimulatedClock, perf_ms
from streaming.instance import InstanceRecord
from streaming.policy import Policy
from streaming.types import SourceState, TargetState


@dataclass(frozen=True)
class TextStreamOptions:
    """``mask_k``: display mask; ``word_ms``: nominal pace used to express compute in source words."""

    mask_k: int = 0
    word_ms: float = DEFAULT_WORD_MS


def run_text_instance(
    policy: Policy,
    source: str,
    *,
    index: int = 0,
    reference: str | None = None,
    options: TextStreamOptions = TextStreamOptions(),
    timer: Callable[[], float] = perf_ms,
) -> InstanceRecord:
    """Stream ``source`` word by word through ``policy``; delays are in source words.

    Compute is measured around every ``update``/``finish`` call with ``timer`` (ms) and added to a
    simulated clock, giving computation-aware ``elapsed`` times in words (compute / ``word_ms``).
    """
    words = tuple(source.split())
    if not words:
        raise ValueError(f"instance {index}: empty source sentence")
    policy.reset()
    caption = CaptionState(mask_k=options.mask_k)
    clock = SimulatedClock.for_text(options.word_ms, timer)

    n = len(words)
    for j in range(1, n + 2):
        t0 = timer()
        if j <= n:
            target: TargetState = policy.update(SourceState(words[:j], float(j), finished=j == n))
        else:
            target = policy.finish()
        clock.add_compute(timer() - t0)
        amount = float(min(j, n))
        caption.show(target, amount=amount, elapsed=clock.elapsed(amount))
    return InstanceRecord.from_caption(
        index, caption, source_length=float(n), reference=reference,
        compute_ms=clock.compute_ms, updates=clock.calls, source=source,
    )


def run_text_corpus(
    policy: Policy,
    sources: Iterable[str],
    references: Iterable[str | None],
    *,
    options: TextStreamOptions = TextStreamOptions(),
    timer: Callable[[], float] = perf_ms,
) -> Iterator[InstanceRecord]:
    """Lazily stream every sentence; yields one record per sentence, in order."""
    for index, (src, ref) in enumerate(zip(sources, references, strict=False)):
        yield run_text_instance(policy, src, index=index, reference=ref, options=options, timer=timer)
