"""Test-time wait-k with any offline translator: prefix-to-prefix decoding without a wait-k-trained model.

After reading g source words the policy has written max(0, g − k + 1) target words (STACL's schedule
g(t) = min(k + t − 1, |x|), with t counting whitespace-separated target *words*). Each new word comes
from translating the source read so far with the written words forced as the target prefix, decoding only
a few subword tokens past it, and keeping the first complete word. Written words are never revised.
Only the stable part of an ASR source is read. When the source ends, the rest is written at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from streaming.policies.reta import strip_sentence_end
from streaming.translator import PrefixContinuer
from streaming.types import SourceState, TargetState

NEW_TOKENS_PER_WORD = 8
"""Decoding budget (subword tokens) past the prefix when asking for one more word."""
FINAL_MAX_TOKENS = 256
"""Decoding budget past the prefix for the rest of the translation once the source has ended."""


@dataclass(frozen=True)
class WaitkOptions:
    """``k``: source words read before the first target word; ``beam_size``: search width per step."""

    k: int = 3
    beam_size: int = 1

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError("k must be >= 1")
        if self.beam_size < 1:
            raise ValueError("beam_size must be >= 1")


class OfflineWaitkPolicy:
    """wait-k over a :class:`PrefixContinuer` (CTranslate2 with a forced target prefix)."""

    name = "waitk"

    def __init__(self, translator: PrefixContinuer, options: WaitkOptions = WaitkOptions()) -> None:
        self.translator = translator
        self.options = options
        self.reset()

    def reset(self) -> None:
        self._written: list[str] = []
        self._source: SourceState | None = None
        self._done = False
        self._revision = 0

    def _state(self) -> TargetState:
        self._revision += 1
        words = tuple(self._written)
        return TargetState(words, len(words), self._revision, self._done)

    def update(self, source: SourceState) -> TargetState:
        self._source = source
        if not self._done:
            if source.finished and source.stable == len(source.tokens):
                self._complete(source.tokens)
            else:
                read = source.stable_tokens
                while len(self._written) < len(read) - self.options.k + 1:
                    word = self._next_word(read)
                    if word is None:
                        break  # nothing more to say for this source prefix: read on
                    self._written.append(word)
        return self._state()

    def finish(self) -> TargetState:
        if not self._done:
            self._complete(self._source.tokens if self._source is not None else ())
        return self._state()

    def _next_word(self, read: tuple[str, ...]) -> str | None:
        n = len(self._written)
        text, ended = self.translator.continue_prefix(
            " ".join(read), " ".join(self._written), beam_size=self.options.beam_size,
            max_new_tokens=NEW_TOKENS_PER_WORD,
        )
        words = text.split()
        if words[:n] != self._written:
            return None  # the tokenizer re-segmented the prefix: do not risk a revision
        new = words[n:]
        complete = new if ended else new[:-1]  # a budget stop may have cut the last word
        kept = strip_sentence_end(tuple(complete[:1]), read)
        return kept[0] if kept else None

    def _complete(self, read: tuple[str, ...]) -> None:
        if read:
            n = len(self._written)
            text, _ = self.translator.continue_prefix(
                " ".join(read), " ".join(self._written), beam_size=self.options.beam_size,
                max_new_tokens=FINAL_MAX_TOKENS,
            )
            words = text.split()
            if words[:n] == self._written:
                self._written.extend(words[n:])
        self._done = True
