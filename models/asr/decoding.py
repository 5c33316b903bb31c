"""Paraformer decoding beyond argmax: a beam over the CIF token slots with n-gram fusion, CTC prefix scores, a lexicon.

Once the CIF predictor has fixed the token count ``N``, the parallel decoder gives one distribution per slot. Argmax
takes each slot's best token on its own. That is fast, but nothing tells it which words follow which. It also
cannot undo a spurious extra slot, which shows up as a doubled piece ("parkeded", "to to").

:func:`decode` runs a beam search over the slots. At each slot it tries the ``top_k`` decoder candidates for every
kept prefix. Where the model has a CTC head, it may also *skip* the slot, at a cost of ``skip_penalty`` nats below the
slot's best token. Prefixes are ranked by

    decoder log p + lm_weight · LM log p        (LM: :class:`models.asr.lm.TokenNgramLM`)

minus ``oov_penalty`` for every completed word that the LM's training text never had, plus ``ctc_weight`` times the
CTC prefix score. The penalty is a soft lexicon: most such "words" are misheard spellings ("offic", "juggl"). The
prefix score is the probability that the audio's CTC labelling starts with the prefix (Watanabe et al. 2017). The
survivors are finally ranked with the whole-sequence CTC probability and the LM's ``</s>``. CTC needs frames
for every token, so it is what penalises doubled pieces and keeps the LM from skipping real ones. The CTC
log-probabilities come from the encoder frames the decoder attended to. Every weight at 0 gives argmax decoding
exactly. All scores are natural logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models.asr.lm import TokenNgramLM

_NEG = -1e30


@dataclass(frozen=True)
class DecodeOptions:
    """Beam settings; ``lm_weight`` applies only with an LM, ``ctc_weight`` / ``skip_penalty`` only with CTC
    log-probs (``skip_penalty`` ≤ 0 turns slot skipping off); streaming partials use ``partial_beam``."""

    lm_weight: float = 0.7
    ctc_weight: float = 0.7
    skip_penalty: float = 6.0
    beam: int = 32
    top_k: int = 8
    partial_beam: int = 4  # streaming partials (revisable, decoded at every chunk): a narrower beam
    oov_penalty: float = 2.0  # nats off for each completed word outside the LM's training words (0 = off)

    def __post_init__(self) -> None:
        if min(self.lm_weight, self.ctc_weight, self.oov_penalty) < 0:
            raise ValueError(f"decoding weights must be ≥ 0 (lm {self.lm_weight}, ctc {self.ctc_weight}, "
                             f"oov {self.oov_penalty})")
        if min(self.beam, self.top_k, self.partial_beam) < 1:
            raise ValueError(f"beam ({self.beam}), partial_beam ({self.partial_beam}) and top_k ({self.top_k}) "
                             "must be at least 1")

    @classmethod
    def from_config(cls, data: dict[str, Any] | None) -> DecodeOptions:
        d, base = data or {}, cls()
        return cls(lm_weight=float(d.get("lm_weight", base.lm_weight)),
                   ctc_weight=float(d.get("ctc_weight", base.ctc_weight)),
                   skip_penalty=float(d.get("skip_penalty", base.skip_penalty)),
                   beam=int(d.get("beam", base.beam)), top_k=int(d.get("top_k", base.top_k)),
                   partial_beam=int(d.get("partial_beam", base.partial_beam)),
                   oov_penalty=float(d.get("oov_penalty", base.oov_penalty)))

    @classmethod
    def greedy(cls) -> DecodeOptions:
        """Argmax per slot: no LM, no CTC rescoring, no skips."""
        return cls(lm_weight=0.0, ctc_weight=0.0, skip_penalty=0.0, oov_penalty=0.0)

    def to_config(self) -> dict[str, Any]:
        return {"lm_weight": self.lm_weight, "ctc_weight": self.ctc_weight, "skip_penalty": self.skip_penalty,
                "beam": self.beam, "top_k": self.top_k, "partial_beam": self.partial_beam,
                "oov_penalty": self.oov_penalty}


class Lexicon:
    """Known words over a SentencePiece vocabulary (``▁`` starts a word): tells whether a prefix's last complete
    word is one of them."""

    def __init__(self, words: frozenset[str], pieces: list[str], special: set[int]) -> None:
        self.words = words
        self._piece = [p.replace("▁", "") for p in pieces]
        self._starts = [p.startswith("▁") for p in pieces]
        self._special = special

    def starts_word(self, token: int) -> bool:
        return 0 <= token < len(self._starts) and self._starts[token]

    def last_word_unknown(self, ids: tuple[int, ...]) -> bool:
        """Whether the word that ends ``ids`` (from its last word-start piece on) is not a known word."""
        parts: list[str] = []
        for i in reversed(ids):
            if i in self._special or not 0 <= i < len(self._piece):
                continue
            parts.append(self._piece[i])
            if self._starts[i]:
                break
        return bool(parts) and "".join(reversed(parts)) not in self.words


@dataclass(frozen=True)
class Decoded:
    """Chosen token ids with their decoder log-probability (skipped slots count their best token)."""

    ids: tuple[int, ...]
    score: float


def greedy(logprobs: np.ndarray) -> Decoded:
    """Argmax per slot of ``logprobs`` ``[N, V]``."""
    if logprobs.shape[0] == 0:
        return Decoded((), 0.0)
    return Decoded(tuple(int(i) for i in logprobs.argmax(axis=-1)), float(logprobs.max(axis=-1).sum()))


@dataclass
class _Hyp:
    """A prefix in the beam: decoder and LM scores, and its CTC prefix state (log, per frame: the prefix ends in
    its last token at frame t, ``r_n``, or in a blank after it, ``r_b``) with the CTC prefix score ``psi``."""

    ids: tuple[int, ...]
    am: float
    lms: float
    r_n: np.ndarray | None = None
    r_b: np.ndarray | None = None
    psi: float = 0.0
    oov: float = 0.0  # penalties for completed unknown words (≤ 0)


def decode(logprobs: np.ndarray, opts: DecodeOptions, *, lm: TokenNgramLM | None = None,
           ctc_logprobs: np.ndarray | None = None, blank: int = 0, lexicon: Lexicon | None = None) -> Decoded:
    """Best tokens for decoder log-probs ``[N, V]`` (one row per CIF slot); ``ctc_logprobs`` ``[T, V]`` are the
    CTC head's log-softmax on the utterance's encoder frames (``blank`` its blank id); with a ``lexicon``, each
    completed word outside it costs ``oov_penalty``."""
    use_lm = lm is not None and opts.lm_weight > 0
    use_ctc = ctc_logprobs is not None and ctc_logprobs.shape[0] > 0 and opts.ctc_weight > 0
    use_lex = lexicon is not None and opts.oov_penalty > 0
    if logprobs.shape[0] == 0 or not (use_lm or use_ctc or use_lex):
        return greedy(logprobs)
    lw = opts.lm_weight if use_lm else 0.0
    cw = opts.ctc_weight if use_ctc else 0.0
    skip = opts.skip_penalty if use_ctc and opts.skip_penalty > 0 else None
    k = min(opts.top_k, logprobs.shape[1])
    x = ctc_logprobs if use_ctc else None
    lex = lexicon if lexicon is not None and opts.oov_penalty > 0 else None
    start = _Hyp((), 0.0, 0.0)
    if x is not None:
        start.r_n, start.r_b = np.full(x.shape[0], _NEG), np.cumsum(x[:, blank])
    beams = [start]
    for row in logprobs:
        top = (np.argpartition(-row, k - 1)[:k] if k < row.shape[0] else np.arange(row.shape[0])).tolist()
        beams = _next_beams(row, top, beams, opts, lm if use_lm else None, lw, cw, x, skip, lex, blank)

    def final_score(h: _Hyp) -> float:
        score = h.am + h.oov
        if lex is not None and lex.last_word_unknown(h.ids):
            score -= opts.oov_penalty
        if use_lm and lm is not None:
            score += lw * (h.lms + lm.logp((lm.bos, *h.ids), lm.eos))
        if h.r_n is not None and h.r_b is not None:
            score += cw * float(np.logaddexp(h.r_n[-1], h.r_b[-1]))  # the whole sequence, not a prefix
        return score

    best_hyp = max(beams, key=final_score)
    return Decoded(best_hyp.ids, best_hyp.am)


def _next_beams(row: np.ndarray, top: list[int], beams: list[_Hyp], opts: DecodeOptions, lm: TokenNgramLM | None,
                lw: float, cw: float, x: np.ndarray | None, skip: float | None, lex: Lexicon | None,
                blank: int) -> list[_Hyp]:
    """One slot of the beam: every kept prefix extended by each of the slot's ``top`` tokens (and, with ``skip``,
    left as it is), scored, deduplicated and cut to ``opts.beam``. Scores are plain lists and arrays; only the
    survivors become :class:`_Hyp` objects."""
    row_scores = row[top].tolist()
    starts = [lex.starts_word(t) for t in top] if lex is not None else [False] * len(top)
    ids: list[tuple[int, ...]] = []
    am: list[float] = []
    lms: list[float] = []
    oov: list[float] = []
    for h in beams:
        if lm is not None:  # the LM history is built once per kept prefix, not once per candidate
            hist = (lm.bos, *h.ids[max(0, len(h.ids) + 1 - lm.order):])
            lps = [lm.logp(hist, t) for t in top]
        else:
            lps = [0.0] * len(top)
        # a word-start piece completes the word before it: an unknown word there costs oov_penalty
        unknown = lex is not None and bool(h.ids) and lex.last_word_unknown(h.ids)
        for t, s, lp, st in zip(top, row_scores, lps, starts, strict=True):
            ids.append((*h.ids, t))
            am.append(h.am + s)
            lms.append(h.lms + lp)
            oov.append(h.oov - opts.oov_penalty if unknown and st else h.oov)
    n = len(ids)
    new_n = new_b = None
    psi = [0.0] * n
    if x is not None:
        r_n = np.repeat(np.stack([h.r_n for h in beams if h.r_n is not None]), len(top), axis=0)
        r_b = np.repeat(np.stack([h.r_b for h in beams if h.r_b is not None]), len(top), axis=0)
        last = np.repeat(np.array([h.ids[-1] if h.ids else -1 for h in beams]), len(top))
        empty = np.repeat(np.array([not h.ids for h in beams]), len(top))
        new_n, new_b, psi_arr = _ctc_scores(x, r_n, r_b, np.array(top * len(beams)), last, empty, blank)
        psi = psi_arr.tolist()
    kept: dict[tuple[int, ...], tuple[float, int]] = {}
    for i in range(n):  # the same tokens reached by skipping different slots: keep the better
        score = am[i] + lw * lms[i] + cw * psi[i] + oov[i]
        if ids[i] not in kept or kept[ids[i]][0] < score:
            kept[ids[i]] = (score, i)
    if skip is not None:  # leave this slot out: the prefix keeps its scores and CTC state
        best = float(row.max())
        for j, h in enumerate(beams):
            score = h.am + best - skip + lw * h.lms + cw * h.psi + h.oov
            if h.ids not in kept or kept[h.ids][0] < score:
                kept[h.ids] = (score, n + j)
    out: list[_Hyp] = []
    for _, i in sorted(kept.values(), key=lambda si: -si[0])[: opts.beam]:
        if i < n:
            out.append(_Hyp(ids[i], am[i], lms[i], None if new_n is None else new_n[i],
                            None if new_b is None else new_b[i], psi[i], oov[i]))
        else:
            h = beams[i - n]
            out.append(_Hyp(h.ids, h.am + best - skip if skip is not None else h.am, h.lms, h.r_n, h.r_b, h.psi,
                            h.oov))
    return out


def _ctc_scores(x: np.ndarray, r_n: np.ndarray, r_b: np.ndarray, tok: np.ndarray, last: np.ndarray,
                empty: np.ndarray, blank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CTC prefix recursion for ``C`` candidates: parents' states ``r_n``/``r_b`` ``[C, T]``, the token each
    adds ``tok``, its parent's last token ``last`` (-1: none) and whether the parent is empty → new ``r_n``,
    ``r_b`` ``[C, T]`` and prefix scores ``psi`` ``[C]``."""
    t_max, c = x.shape[0], tok.shape[0]
    # a repeated token must be separated from the previous one by a blank; frame-major ([T, C]) from here on, so
    # every step of the scan reads and writes contiguous rows in place
    phi = np.ascontiguousarray(np.where((tok == last)[:, None], r_b, np.logaddexp(r_n, r_b)).T)
    xc = x[:, tok]  # [T, C]
    # the states keep their parents' dtypes; each step computes in the promoted type and rounds once on storing
    new_n = np.empty((t_max, c), dtype=r_n.dtype)
    new_b = np.empty((t_max, c), dtype=r_b.dtype)
    new_n[0] = np.where(empty, xc[0], _NEG)
    new_b[0] = _NEG
    psi = new_n[0].copy()
    x_blank = x[:, blank]
    step_n = np.empty(c, dtype=np.result_type(new_n, phi, xc))
    step_b = np.empty(c, dtype=np.result_type(new_n, new_b, x_blank))
    emit = np.empty(c, dtype=np.result_type(phi, xc))
    for t in range(1, t_max):
        np.logaddexp(new_n[t - 1], phi[t - 1], out=step_n)
        step_n += xc[t]
        new_n[t] = step_n
        np.logaddexp(new_n[t - 1], new_b[t - 1], out=step_b)
        step_b += x_blank[t]
        new_b[t] = step_b
        np.add(phi[t - 1], xc[t], out=emit)
        psi = np.logaddexp(psi, emit)
    return new_n.T, new_b.T, psi
