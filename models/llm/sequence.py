"""The growing interleaved sequence every runtime shares: token bookkeeping, the per-level prompt cache, cache reuse
vs recomputation. A runtime (transformers, onnxruntime) supplies only one forward step.

``reuse_cache=True`` feeds only the new tokens and keeps the returned cache; ``reuse_cache=False`` feeds the whole
sequence at every step (the baseline the benchmark measures; same outputs). The latency prompt's cache is
computed once per level (shared by every fork) and copied into each new sentence.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from models.llm.tokens import decode_words, encode_segment, prompt_ids
from streaming.policies.llm import ControlIds


class LoadedLM(Protocol):
    """What the forks of one loaded model share."""

    tokenizer: Any
    control: ControlIds
    max_positions: int
    prompt_cache: dict[str, tuple[list[int], Any, np.ndarray]]


class InterleavedSequence:
    """One growing interleaved sequence (implements ``streaming.policies.llm.InterleavedLM``); subclasses define
    :meth:`_run`, :meth:`_empty_cache` and :meth:`_copy_cache`."""

    def __init__(self, loaded: LoadedLM, reuse_cache: bool) -> None:
        self._m = loaded
        self.reuse_cache = reuse_cache
        self.control: ControlIds = loaded.control
        self.max_positions = loaded.max_positions
        self.forward_calls = 0
        self._ids: list[int] = []
        self._cache: Any = self._empty_cache()

    # -- what a runtime provides -------------------------------------------------------------------------------
    def _run(self, ids: list[int], cache: Any) -> tuple[np.ndarray, Any]:
        """Next-token scores after ``ids`` fed on top of ``cache`` (empty: from the start), and the new cache."""
        raise NotImplementedError

    def _empty_cache(self) -> Any:
        raise NotImplementedError

    def _copy_cache(self, cache: Any) -> Any:
        """A cache the sequence may extend without changing ``cache`` (the shared prompt cache)."""
        raise NotImplementedError

    # -- the InterleavedLM protocol ------------------------------------------------------------------------------
    def _forward(self, ids: list[int], cache: Any) -> tuple[np.ndarray, Any]:
        self.forward_calls += 1
        return self._run(ids, cache)

    @property
    def tokenizer(self) -> Any:
        return self._m.tokenizer

    @property
    def length(self) -> int:
        return len(self._ids)

    @property
    def sequence(self) -> list[int]:
        """The interleaved token ids so far (prompt included)."""
        return list(self._ids)

    def start(self, latency: str) -> None:
        if not self.reuse_cache:
            self._ids = prompt_ids(self.tokenizer, latency)
            self._cache = self._empty_cache()
            return
        saved = self._m.prompt_cache.get(latency)
        if saved is None:
            ids = prompt_ids(self.tokenizer, latency)
            scores, cache = self._forward(ids, self._empty_cache())
            saved = (ids, cache, scores)
            self._m.prompt_cache[latency] = saved
        self._ids = list(saved[0])
        self._cache = self._copy_cache(saved[1])

    def word_ids(self, word: str, *, first: bool) -> list[int]:
        return encode_segment(self.tokenizer, word, first=first)

    def feed(self, ids: list[int]) -> np.ndarray:
        if not ids:
            raise ValueError("feed needs at least one token")
        self._ids.extend(ids)
        if self.reuse_cache:
            scores, self._cache = self._forward(ids, self._cache)
        else:
            scores, _ = self._forward(self._ids, self._empty_cache())
        return scores

    def decode_words(self, ids: list[int]) -> list[str]:
        return decode_words(self.tokenizer, ids)
