"""EAST-style simultaneous translation with a decoder-only LM that decides itself when to read and write.

Source and target are interleaved in ONE growing token sequence whose KV cache is kept across every step::

    <latency prompt> src1<|end-of-read|>tgt1<|end-of-write|> src2<|end-of-read|>tgt2<|end-of-write|>…

- READ: the next (stable) source word is appended and ONE token is probed (``<|end-of-write|>``, end-of-text and
  padding suppressed). If the model's best token is ``<|end-of-read|>`` it is appended and the policy switches
  to WRITE; otherwise the probe is discarded and the next word is read when it arrives.
- WRITE: tokens are generated greedily (``<|end-of-read|>`` suppressed) until ``<|end-of-write|>`` (or the
  end-of-text token, which counts as one) or a length budget; everything written is committed — the LLM policy
  never revises. The ``<|end-of-write|>`` is fed to the model together with the next source word.
- The end of the source forces a write (``<|end-of-read|>`` is appended without asking) unless the last word
  read has already been answered by a write.

Only the stable part of an ASR source is read (a word once read cannot be taken back from the sequence).
The model behind it is an :class:`InterleavedLM` (``models.llm.runtime.HfInterleavedLM`` in practice); this
module is I/O-free and does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from streaming.errors import SourceTooLongError
from streaming.types import SourceState, TargetState

LATENCY_LEVELS = ("low", "medium", "high")


@dataclass(frozen=True)
class ControlIds:
    """Token ids of the read/write protocol; ``suppress_read``/``suppress_write`` are never chosen in that mode."""

    eor: int
    eow: int
    eos: int | None
    suppress_read: tuple[int, ...]
    suppress_write: tuple[int, ...]


class SequenceTooLongError(SourceTooLongError):
    """The interleaved sequence would exceed the model's context (positions)."""


class InterleavedLM(Protocol):
    """A causal LM over one growing sequence (a KV cache, or recomputation: the policy cannot tell)."""

    control: ControlIds
    max_positions: int

    def start(self, latency: str) -> None:
        """Begin a new sequence with the latency prompt."""
        ...

    @property
    def length(self) -> int:
        """Tokens in the sequence so far."""
        ...

    def word_ids(self, word: str, *, first: bool) -> list[int]:
        """Token ids of one source word (a leading space unless ``first``)."""
        ...

    def feed(self, ids: list[int]) -> np.ndarray:
        """Append ``ids``; the next-token scores ``[V]`` after them."""
        ...

    def decode_words(self, ids: list[int]) -> list[str]:
        """The words of generated target ids."""
        ...


class LlmPolicy:
    """EAST's read/write loop over an :class:`InterleavedLM` (one sentence/segment per ``reset``)."""

    name = "llm"

    def __init__(self, model: InterleavedLM, latency: str = "medium", *, max_write_tokens: int = 200) -> None:
        if latency not in LATENCY_LEVELS:
            raise ValueError(f"latency must be one of {', '.join(LATENCY_LEVELS)}")
        self.model = model
        self.latency = latency
        self.max_write_tokens = max_write_tokens
        self.reads = 0  # over the policy's lifetime: model calls made reading / probing
        self.writes = 0  # write phases
        self.reset()

    def reset(self) -> None:
        self.model.start(self.latency)
        self._read = 0  # source words appended
        self._unanswered = 0  # words read since the last write
        self._pending: list[int] = []  # ids to feed before the next word (the last <|end-of-write|>)
        self._target_ids: list[int] = []
        self._words: tuple[str, ...] = ()
        self._done = False
        self._revision = 0

    # -- Policy -------------------------------------------------------------------------------------------
    def update(self, source: SourceState) -> TargetState:
        if not self._done:
            words = source.tokens if source.finished else source.stable_tokens
            while self._read < len(words):
                scores = self._read_word(words[self._read])
                if source.finished and self._read == len(words):
                    break  # the end of the source forces the write below: no need to ask
                if self._probe(scores) == self.model.control.eor:
                    self._write()
            if source.finished:
                self._end_of_source()
        return self._state()

    def finish(self) -> TargetState:
        if not self._done:
            self._end_of_source()
        return self._state()

    # -- internals ------------------------------------------------------------------------------------
    def _state(self) -> TargetState:
        self._revision += 1
        return TargetState(self._words, len(self._words), self._revision, self._done)

    def _check_room(self, extra: int) -> None:
        if self.model.length + extra >= self.model.max_positions:
            raise SequenceTooLongError(
                f"the interleaved sequence would reach {self.model.length + extra} tokens; this model has "
                f"{self.model.max_positions} positions (segment the source into shorter sentences)")

    def _read_word(self, word: str) -> np.ndarray:
        ids = [*self._pending, *self.model.word_ids(word, first=self._read == 0)]
        self._check_room(len(ids) + 2)
        self._pending = []
        self._read += 1
        self._unanswered += 1
        self.reads += 1
        return self.model.feed(ids)

    def _probe(self, scores: np.ndarray) -> int:
        s = np.array(scores, dtype=np.float32, copy=True)
        s[list(self.model.control.suppress_read)] = -np.inf
        return int(np.argmax(s))

    def _write(self) -> None:
        """Append ``<|end-of-read|>`` and generate until ``<|end-of-write|>``; commits what was written."""
        ctl = self.model.control
        budget = min(self.max_write_tokens, (self._unanswered + 25) * 2)
        ids = [*self._pending, ctl.eor]
        self._pending = []
        written = 0
        self.writes += 1
        while True:
            self._check_room(len(ids) + 1)
            scores = np.array(self.model.feed(ids), dtype=np.float32, copy=True)
            scores[list(ctl.suppress_write)] = -np.inf
            token = int(np.argmax(scores))
            if token == ctl.eow or (ctl.eos is not None and token == ctl.eos):
                self._pending = [ctl.eow]
                break
            self._target_ids.append(token)
            written += 1
            if written >= budget or self.model.length + 2 >= self.model.max_positions:
                self._pending = [token, ctl.eow]  # as EAST: the chunk is closed for the model
                break
            ids = [token]
        self._unanswered = 0
        self._words = tuple(self.model.decode_words(self._target_ids))

    def _end_of_source(self) -> None:
        if self._read and self._unanswered:
            self._write()
        self._done = True
