"""wait-k with a model trained for it: reads source words, writes target words, never revises.

STACL's schedule with t counting target WORDS: target word t is written once g(t) = min(k + t − 1, |x|) source
words have been read (all remaining words are written once the source has ended). Only the stable part of an
ASR source is read. The model is incremental (``IncrementalModel``): reading a word runs the encoder on that
word's tokens only, and writing runs one cached decoder step per token.

Word boundaries: the decoder's tokens are SentencePiece pieces, and a piece starting with "▁" opens a new word.
Target word t is complete when the model proposes the start of word t + 1 (or ``</s>``); that proposal was made
with word t's source context, so it is discarded and the last token of word t stays pending: it is fed again
(with the k + t source words word t + 1 is entitled to) when word t + 1 is written, with the proposal then
restricted to word-initial pieces, since word t is already on screen. ``</s>`` is only accepted once the source
has ended.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from streaming.types import SourceState, TargetState


class IncrementalModel(Protocol):
    """What the policy needs from a wait-k model (``models.waitk.runtime.WaitkOnnx`` in practice)."""

    start_id: int
    eos_id: int
    pad_id: int
    max_positions: int
    word_start: np.ndarray  # bool [V]: piece opens a word
    source_tokens: int
    target_tokens: int

    def reset(self) -> None: ...
    def word_ids(self, word: str) -> list[int]: ...
    def read(self, ids: list[int]) -> None: ...
    def propose(self, token: int) -> np.ndarray: ...
    def commit(self) -> None: ...
    def decode(self, ids: list[int]) -> str: ...


class WaitkPolicy:
    """Incremental wait-k over an :class:`IncrementalModel` (one sentence/segment per ``reset``)."""

    name = "waitk"

    def __init__(self, model: IncrementalModel, k: int = 3, *, max_length_ratio: float = 2.0) -> None:
        if k < 1:
            raise ValueError("k must be >= 1")
        self.model = model
        self.k = k
        self.max_length_ratio = max_length_ratio
        self.reset()

    def reset(self) -> None:
        self.model.reset()
        self._read = 0  # source words read
        self._ended = False
        self._words: list[str] = []
        self._pending: int | None = self.model.start_id  # last written token, not yet in the decoder cache
        self._carried: np.ndarray | None = None  # next-token logits already computed on the final source
        self._done = False
        self._revision = 0

    # -- Policy -------------------------------------------------------------------------------------------
    def update(self, source: SourceState) -> TargetState:
        if not self._done:
            if source.finished and source.stable == len(source.tokens):
                self._complete(source.tokens)
            else:
                words = source.stable_tokens
                while not self._done:
                    if self._read < self.k + len(self._words):  # g(t) for t = len(words) + 1
                        if self._read >= len(words):
                            break  # wait for the next source word
                        self._read_word(words[self._read])
                        continue
                    if not self._write_word():
                        break
        return self._state()

    def finish(self) -> TargetState:
        if not self._done:
            self._complete(())
        return self._state()

    # -- internals ------------------------------------------------------------------------------------
    def _state(self) -> TargetState:
        self._revision += 1
        words = tuple(self._words)
        return TargetState(words, len(words), self._revision, self._done)

    def _read_word(self, word: str) -> None:
        self.model.read(self.model.word_ids(word))
        self._read += 1

    def _complete(self, words: tuple[str, ...]) -> None:
        while self._read < len(words):
            self._read_word(words[self._read])
        if self._read == 0:
            self._done = True  # nothing to translate
            return
        self.model.read([self.model.eos_id])
        self._ended = True
        while self._write_word():
            pass
        self._done = True

    def _limit(self) -> int:
        budget = int(self.max_length_ratio * self.model.source_tokens) + 10
        return min(budget, self.model.max_positions - 1)

    def _pick(self, logits: np.ndarray, word_start_only: bool) -> int:
        scores = np.array(logits, dtype=np.float32, copy=True)
        scores[self.model.pad_id] = -np.inf
        if word_start_only:
            allowed = self.model.word_start.copy()
            allowed[self.model.eos_id] = True
            scores[~allowed] = -np.inf
        if not self._ended:
            scores[self.model.eos_id] = -np.inf
        return int(np.argmax(scores))

    def _write_word(self) -> bool:
        """Write one target word on the source read so far; False when the translation is over."""
        if self.model.target_tokens >= self._limit():
            self._done = self._done or self._ended
            return False
        if self._carried is not None:
            logits, self._carried = self._carried, None
        else:
            assert self._pending is not None
            logits = self.model.propose(self._pending)
            self.model.commit()
        self._pending = None
        token = self._pick(logits, word_start_only=True)
        if token == self.model.eos_id:
            return False
        pieces = [token]
        while True:
            logits = self.model.propose(token)
            nxt = self._pick(logits, word_start_only=False)
            boundary = nxt == self.model.eos_id or bool(self.model.word_start[nxt])
            if boundary or self.model.target_tokens + 1 >= self._limit():
                if self._ended:  # the source will not grow: this proposal stays valid
                    self.model.commit()
                    self._carried = logits
                else:  # re-proposed with one more source word when the next word is due
                    self._pending = token
                break
            self.model.commit()
            pieces.append(nxt)
            token = nxt
        text = self.model.decode(pieces).strip()
        if text:
            self._words.extend(text.split())
        return True
