"""The cascade for a stream of text (I/O-free): words in, the same caption events as the speech pipeline out.

Words arrive as a person types or another system transcribes; :class:`TextPipeline` groups them into
segments (sentences) and drives a policy over each one:

- a word ending a sentence (``.``, ``!``, ``?`` or a CJK full stop, maybe followed by closing quotes or
  brackets) closes its segment (with ``split_sentences``; a corpus replay gives one sentence per call instead);
- so does the ``max_segment_words``-th word of a segment without one, and a word that would take the segment
  past ``max_segment_chars`` characters starts the next one: a re-translation policy's cost grows with the
  segment and a model takes a bounded number of subwords (about one per character in the worst case), so an
  endless sentence must neither hold a model thread nor overflow the model;
- words given together are read together: the policy updates once per :meth:`TextPipeline.feed` call and
  segment end, not once per word (a pasted paragraph costs a few translations, not one per word).

Times: ``clock()`` gives stream time in ms (the server: wall time since the session started; a corpus replay:
the nominal pace, ``word_ms`` per word). Each segment also has a simulated clock in source words (compute turned
into words at ``word_ms`` per word, :class:`streaming.clock.SimulatedClock`), so its record has the delays in
source words that text latency metrics (AL, LAAL, *_CA) use. ``latency_ms`` of an event is the
computation-aware lag, as for speech (:mod:`streaming.events`): the policy compute spent on the segment so far.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from streaming.caption import CaptionState
from streaming.clock import DEFAULT_WORD_MS, SimulatedClock, perf_ms
from streaming.events import CaptionEvent, SegmentResult
from streaming.instance import InstanceRecord
from streaming.policy import Policy
from streaming.types import SENTENCE_END, SourceState, TargetState

SENTENCE_END_WORD = re.compile("[" + re.escape("".join(SENTENCE_END)) + "][\"'\u201d\u2019)\\]»]*$")
"""A word that ends a sentence: final punctuation, maybe followed by closing quotes or brackets."""


@dataclass(frozen=True)
class TextPipelineOptions:
    """``mask_k``: display mask of non-final captions (words); ``word_ms``: nominal ms per source word (turns
    compute into words for the records' computation-aware delays); ``split_sentences``: a sentence-ending word
    closes the segment; ``max_segment_words``/``max_segment_chars``: hard limits of one segment (0: none)."""

    mask_k: int = 0
    word_ms: float = DEFAULT_WORD_MS
    split_sentences: bool = True
    max_segment_words: int = 60
    max_segment_chars: int = 250

    def __post_init__(self) -> None:
        if self.mask_k < 0:
            raise ValueError("mask_k must be >= 0")
        if self.word_ms <= 0:
            raise ValueError("word_ms must be positive")
        if self.max_segment_words < 0 or self.max_segment_chars < 0:
            raise ValueError("max_segment_words and max_segment_chars must be >= 0 (0: no limit)")


def ends_sentence(word: str) -> bool:
    """Whether ``word`` ends a sentence (see :data:`SENTENCE_END_WORD`)."""
    return SENTENCE_END_WORD.search(word) is not None


class TextPipeline:
    """Segmented streaming translation of one text stream; not thread-safe (one call at a time)."""

    def __init__(self, policy: Policy, options: TextPipelineOptions | None = None, *,
                 clock: Callable[[], float] | None = None, timer: Callable[[], float] = perf_ms) -> None:
        """``clock``: stream time in ms (default: ``word_ms`` per word read so far); ``timer``: compute in ms."""
        self.options = options or TextPipelineOptions()
        self.policy = policy
        self.timer = timer
        self._words_read = 0
        self.clock: Callable[[], float] = clock or (lambda: self._words_read * self.options.word_ms)
        self.segments: list[SegmentResult] = []
        self.compute_ms = 0.0  # the whole stream's policy compute
        self._open_segment()

    # -- input --------------------------------------------------------------------------------------------
    def feed(self, words: str | Sequence[str], *, last: bool = False) -> list[CaptionEvent]:
        """Words of the stream (a string is split on whitespace); ``last``: they end the segment (a corpus
        replay's sentence). Returns the caption events they caused."""
        opts = self.options
        events: list[CaptionEvent] = []
        unread = False  # words appended since the policy's last update
        for word in words.split() if isinstance(words, str) else words:
            if self._words and opts.max_segment_chars and self._chars + 1 + len(word) > opts.max_segment_chars:
                events += self._close()
            if not self._words:
                self._start_ms = self.clock()
            self._words.append(word)
            self._words_read += 1
            unread = True
            if ((opts.split_sentences and ends_sentence(word))
                    or (opts.max_segment_words and len(self._words) >= opts.max_segment_words)):
                events += self._close()
                unread = False
        if last and self._words:
            events += self._close()
        elif unread:
            events += self._update(finished=False)
        return events

    def finish(self) -> list[CaptionEvent]:
        """End of stream: the open segment (if any) becomes final."""
        return self._close() if self._words else []

    @property
    def words_read(self) -> int:
        """Words of the whole stream read so far."""
        return self._words_read

    @property
    def source_words(self) -> tuple[str, ...]:
        """Words of the open segment."""
        return tuple(self._words)

    # -- internals ----------------------------------------------------------------------------------------
    def _open_segment(self) -> None:
        self.policy.reset()
        self._words: list[str] = []
        self._caption = CaptionState(mask_k=self.options.mask_k)
        self._sim = SimulatedClock.for_text(self.options.word_ms, self.timer)
        self._start_ms = 0.0
        self._revision = 0
        self._updates = 0

    @property
    def _chars(self) -> int:
        """Characters of the open segment (its words joined by spaces)."""
        return sum(map(len, self._words)) + max(0, len(self._words) - 1)

    def _timed(self, step: Callable[[], TargetState]) -> TargetState:
        t0 = self.timer()
        target = step()
        spent = self.timer() - t0
        self._sim.add_compute(spent)
        self.compute_ms += spent
        amount = float(len(self._words))
        self._caption.show(target, amount=amount, elapsed=self._sim.elapsed(amount))
        return target

    def _update(self, *, finished: bool) -> list[CaptionEvent]:
        before = len(self._caption.revisions)
        source = SourceState(tuple(self._words), float(len(self._words)), finished=finished)
        target = self._timed(lambda: self.policy.update(source))
        self._updates += 1
        if len(self._caption.revisions) == before or target.final:
            return []
        return [self._event("partial")]

    def _close(self) -> list[CaptionEvent]:
        """Final update and finish of the open segment: its final event and record; then a new segment."""
        self._update(finished=True)
        self._timed(self.policy.finish)
        event = self._event("final")
        record = InstanceRecord.from_caption(
            len(self.segments), self._caption, source_length=float(len(self._words)),
            compute_ms=self._sim.compute_ms, updates=self._sim.calls, source=" ".join(self._words),
        )
        self.segments.append(SegmentResult(len(self.segments), self._start_ms, event.end_ms, record,
                                           " ".join(self._words)))
        self._open_segment()
        return [event]

    def _event(self, kind: Literal["partial", "final"]) -> CaptionEvent:
        self._revision += 1
        rev = self._caption.revisions[-1] if self._caption.revisions else None
        words = rev.words if rev is not None else ()
        stable = len(words) if kind == "final" else (rev.stable if rev is not None else 0)
        return CaptionEvent(type=kind, segment=len(self.segments), revision=self._revision, stable=stable,
                            source=" ".join(self._words), target=" ".join(words), start_ms=self._start_ms,
                            end_ms=self.clock(), latency_ms=self._sim.compute_ms)


def replay_sentence(policy: Policy, source: str, *, index: int = 0, reference: str | None = None,
                    options: TextPipelineOptions | None = None,
                    timer: Callable[[], float] = perf_ms) -> InstanceRecord:
    """One corpus sentence through a :class:`TextPipeline`, word by word; its record (delays in source words)."""
    words = source.split()
    if not words:
        raise ValueError(f"instance {index}: empty source sentence")
    opts = options or TextPipelineOptions()
    pipeline = TextPipeline(policy, TextPipelineOptions(mask_k=opts.mask_k, word_ms=opts.word_ms,
                                                        split_sentences=False, max_segment_words=0,
                                                        max_segment_chars=0), timer=timer)
    for j, word in enumerate(words, start=1):
        pipeline.feed([word], last=j == len(words))
    record = pipeline.segments[0].record
    return replace(record, index=index, reference=reference)
