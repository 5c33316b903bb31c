"""Lexical shortlist for the NAT output layer: score only the target pieces a source can plausibly produce.

The output projection over all ``V + 1`` classes is a large share of a one-pass NAT's compute (every decoder
position × every piece). Like Marian's lexical shortlists, the candidate set for one source is

    frequent target pieces  ∪  ⋃ over source pieces s: the ``per_source`` pieces most associated with s  ∪  {blank}

with association = Dice coefficient of sentence-level co-occurrence in the (distilled) training pairs. The
runtime passes this set to the ONNX graph as ``vocab_ids``; the graph scores only those rows of the tied
embedding and maps the argmax back to full ids. ``coverage`` checks it on data.

File: ``shortlist.npz`` in the model directory with ``frequent`` [N], ``offsets`` [V + 1] and ``candidates``
(int64; the candidates of source piece s are ``candidates[offsets[s]:offsets[s + 1]]``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

FILE_NAME = "shortlist.npz"


@dataclass(frozen=True)
class Shortlist:
    """Candidate target pieces per source piece, plus always-allowed frequent pieces (ids include the blank)."""

    frequent: np.ndarray  # int64 [N], sorted, includes the blank id
    offsets: np.ndarray  # int64 [V + 1]
    candidates: np.ndarray  # int64 [offsets[-1]]

    @property
    def vocab_size(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def for_source(self, src_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Sorted unique candidate ids (int64) for one source (ids outside the table add nothing)."""
        ids = np.asarray(src_ids, dtype=np.int64).reshape(-1)
        ids = ids[(ids >= 0) & (ids < self.vocab_size)]
        parts = [self.frequent]
        parts.extend(self.candidates[self.offsets[i] : self.offsets[i + 1]] for i in np.unique(ids))
        return np.unique(np.concatenate(parts))

    def incremental(self) -> ShortlistUnion:
        """A stateful :meth:`for_source` for sources that grow call by call (re-translation of prefixes)."""
        return ShortlistUnion(self)

    def save(self, path: Path) -> Path:
        np.savez_compressed(path, frequent=self.frequent, offsets=self.offsets, candidates=self.candidates)
        return path

    @classmethod
    def load(cls, path: Path) -> Shortlist:
        with np.load(path) as z:
            return cls(frequent=z["frequent"].astype(np.int64), offsets=z["offsets"].astype(np.int64),
                       candidates=z["candidates"].astype(np.int64))


class ShortlistUnion:
    """:meth:`Shortlist.for_source` with memory: while each source's pieces include the previous source's, only
    the new pieces' candidates are added to a boolean mask (a prefix that grew by one word costs a few µs, not a
    fresh union); a source that dropped pieces (an ASR revision, a new sentence) rebuilds the mask."""

    def __init__(self, shortlist: Shortlist) -> None:
        self.shortlist = shortlist
        self._mask = np.zeros(int(max(shortlist.frequent.max(initial=0), shortlist.candidates.max(initial=0))) + 1,
                              dtype=bool)
        self._pieces: set[int] = set()
        self._reset()

    def _reset(self) -> None:
        self._mask[:] = False
        self._mask[self.shortlist.frequent] = True
        self._pieces = set()

    def __call__(self, src_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        sl = self.shortlist
        pieces = {int(i) for i in np.asarray(src_ids).reshape(-1) if 0 <= int(i) < sl.vocab_size}
        if not pieces >= self._pieces:
            self._reset()
        for i in pieces - self._pieces:
            self._mask[sl.candidates[sl.offsets[i] : sl.offsets[i + 1]]] = True
        self._pieces |= pieces
        return np.flatnonzero(self._mask).astype(np.int64)


def build_shortlist(
    sources: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    vocab_size: int,
    blank_id: int,
    *,
    per_source: int = 50,
    frequent: int = 300,
) -> Shortlist:
    """Shortlist from parallel id sequences (sources without ``</s>`` matter not: every piece gets its list).

    ``per_source``: candidates kept per source piece (best Dice first); ``frequent``: the most frequent target
    pieces (by sentence count), always allowed.
    """
    if len(sources) != len(targets):
        raise ValueError(f"{len(sources)} sources but {len(targets)} targets")
    codes: list[np.ndarray] = []
    src_count = np.zeros(vocab_size, dtype=np.int64)
    tgt_count = np.zeros(vocab_size, dtype=np.int64)
    for s, t in zip(sources, targets, strict=True):
        su = np.unique(np.asarray(s, dtype=np.int64))
        tu = np.unique(np.asarray(t, dtype=np.int64))
        su, tu = su[(su >= 0) & (su < vocab_size)], tu[(tu >= 0) & (tu < vocab_size)]
        src_count[su] += 1
        tgt_count[tu] += 1
        if su.size and tu.size:
            codes.append((su[:, None] * vocab_size + tu[None, :]).reshape(-1))
    pair, count = (np.unique(np.concatenate(codes), return_counts=True) if codes
                   else (np.zeros(0, np.int64), np.zeros(0, np.int64)))
    s_id, t_id = pair // vocab_size, pair % vocab_size
    dice = 2.0 * count / (src_count[s_id] + tgt_count[t_id])
    order = np.lexsort((-dice, s_id))  # by source piece, best Dice first
    s_sorted, t_sorted = s_id[order], t_id[order]
    starts = np.searchsorted(s_sorted, np.arange(vocab_size + 1))
    keep_parts, offsets = [], np.zeros(vocab_size + 1, dtype=np.int64)
    for piece in range(vocab_size):
        part = t_sorted[starts[piece] : min(starts[piece + 1], starts[piece] + per_source)]
        keep_parts.append(part)
        offsets[piece + 1] = offsets[piece] + part.size
    candidates = np.concatenate(keep_parts) if keep_parts else np.zeros(0, np.int64)
    top = np.argsort(-tgt_count, kind="stable")[:frequent]
    top = top[tgt_count[top] > 0]
    freq = np.unique(np.concatenate([top, np.asarray([blank_id], dtype=np.int64)]))
    return Shortlist(frequent=freq.astype(np.int64), offsets=offsets, candidates=candidates.astype(np.int64))


def coverage(shortlist: Shortlist, sources: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]]) -> float:
    """Share of output tokens (e.g. the full-vocabulary model's) that the source's shortlist contains."""
    hit = total = 0
    for s, o in zip(sources, outputs, strict=True):
        allowed = shortlist.for_source(s)
        o_arr = np.asarray(o, dtype=np.int64)
        hit += int(np.isin(o_arr, allowed).sum())
        total += o_arr.size
    return hit / total if total else 1.0
