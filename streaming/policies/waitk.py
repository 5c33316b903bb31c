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
has ended; a model that proposes ``</s>`` earlier (it has said all the read source allows) is not made to write:
the policy reads the next source word first (a stall), as wait-k implementations do. Likewise no sentence-final
``.``/``!``/``?`` is written before the source ends: a word shown can never be taken back, and a premature full stop
makes a sentence-level model consider the translation finished.
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
    sentence_end: np.ndarray  # bool [V]: piece is sentence-final punctuation
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
        self._stalled = False  # the model proposed </s> before the source ended: read before writing again
        self._held: str | None = None  # a finished word not shown yet (see _write_word)
        self._revision = 0

    # -- Policy -------------------------------------------------------------------------------------------
    def update(self, source: SourceState) -> TargetState:
        if not self._done:
            if source.finished and source.stable == len(source.tokens):
                self._complete(source.tokens)
            else:
                words = source.stable_tokens
                while not self._done:
                    # g(t) for t = len(words) + 1; a stall (the model would end the translation here) reads on
                    if self._stalled or self._read < self.k + len(self._words):
                        if self._read >= len(words):
                            break  # wait for the next source word
                        self._read_word(words[self._read])
                        self._stalled = False
                        continue
                    if not self._write_word() and not self._stalled:
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
        self._show_held()
        self._done = True

    def _limit(self) -> int:
        budget = int(self.max_length_ratio * self.model.source_tokens) + 10
        return min(budget, self.model.max_positions - 1)

    def _wants_end(self, logits: np.ndarray) -> bool:
        """The model's best next piece ends the sentence (``</s>`` or a final ``.``/``!``/``?``)."""
        scores = np.array(logits, dtype=np.float32, copy=True)
        scores[self.model.pad_id] = -np.inf
        best = int(np.argmax(scores))
        return best == self.model.eos_id or bool(self.model.sentence_end[best])

    def _pick(self, logits: np.ndarray, word_start_only: bool) -> int:
        scores = np.array(logits, dtype=np.float32, copy=True)
        scores[self.model.pad_id] = -np.inf
        if word_start_only:
            allowed = self.model.word_start.copy()
            allowed[self.model.eos_id] = True
            if self._ended:  # the full stop that waited for the end of the source (shown as its own word)
                allowed |= self.model.sentence_end
            scores[~allowed] = -np.inf
        if not self._ended:  # the sentence cannot end (nor be said to end, on screen) before its source does
            scores[self.model.eos_id] = -np.inf
            scores[self.model.sentence_end] = -np.inf
        return int(np.argmax(scores))

    def _write_word(self) -> bool:
        """Write one target word on the source read so far; False when nothing was written: the translation
        is over, the length limit is reached, or (source not ended) the model would end the sentence here
        (``</s>`` or a full stop), which sets ``_stalled`` so the next source word is read first.

        A word after which the model wants to end the sentence is held back (not shown) until it is known
        whether the model goes on (the word is shown, then the next one) or the source ends (the full stop
        joins it): a word on screen is never changed.
        """
        if self.model.target_tokens >= self._limit():
            self._show_held()
            self._done = self._done or self._ended
            return False
        if self._carried is not None:
            logits, self._carried = self._carried, None
        else:
            assert self._pending is not None
            logits = self.model.propose(self._pending)
            if not self._ended and self._wants_end(logits):
                self._stalled = True  # the proposal is dropped: the pending token is fed again with more source
                return False
            self.model.commit()
        self._pending = None
        token = self._pick(logits, word_start_only=True)
        if self._held is not None and bool(self.model.sentence_end[token]):
            self._held += self.model.decode([token]).strip()  # the source has ended: the full stop joins the word
            self._show_held()
            self._pending = token
            return True
        self._show_held()
        if token == self.model.eos_id:
            return False
        pieces = [token]
        wants_end = False
        while True:
            logits = self.model.propose(token)
            nxt = self._pick(logits, word_start_only=False)
            wants_end = self._wants_end(logits)
            boundary = wants_end or nxt == self.model.eos_id or bool(self.model.word_start[nxt])
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
        if wants_end and not self._ended:
            self._held = text or None  # shown once the model goes on, or with its full stop at the end
            self._stalled = True
            return False
        if text:
            self._words.extend(text.split())
        return True

    def _show_held(self) -> None:
        if self._held is not None:
            self._words.extend(self._held.split())
            self._held = None
