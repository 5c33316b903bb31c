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
        parents = [h for h in beams for _ in top]
        tokens = [t for _ in beams for t in top]
        cand = [_Hyp((*h.ids, t), h.am + float(row[t]),
                     h.lms + (lm.logp((lm.bos, *h.ids), t) if use_lm and lm is not None else 0.0), oov=h.oov)
                for h, t in zip(parents, tokens, strict=True)]
        if lex is not None:  # a word-start piece completes the word before it
            for h, t, c in zip(parents, tokens, cand, strict=True):
                if h.ids and lex.starts_word(t) and lex.last_word_unknown(h.ids):
                    c.oov -= opts.oov_penalty
        if x is not None:
            _ctc_extend(x, parents, tokens, cand, blank)
        if skip is not None:  # leave this slot out: the prefix keeps its scores and CTC state
            best = float(row.max())
            cand += [_Hyp(h.ids, h.am + best - skip, h.lms, h.r_n, h.r_b, h.psi, h.oov) for h in beams]
        kept: dict[tuple[int, ...], tuple[float, _Hyp]] = {}
        for h in cand:  # the same tokens reached by skipping different slots: keep the better
            score = h.am + lw * h.lms + cw * h.psi + h.oov
            if h.ids not in kept or kept[h.ids][0] < score:
                kept[h.ids] = (score, h)
        beams = [h for _, h in sorted(kept.values(), key=lambda sh: -sh[0])[: opts.beam]]

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


def _ctc_extend(x: np.ndarray, parents: list[_Hyp], tokens: list[int], out: list[_Hyp], blank: int) -> None:
    """CTC prefix scores of every parent + token at once (Watanabe et al. 2017, vectorised over candidates):
    fills ``r_n``, ``r_b`` and ``psi`` of ``out``."""
    t_max = x.shape[0]
    r_n = np.stack([h.r_n for h in parents if h.r_n is not None])
    r_b = np.stack([h.r_b for h in parents if h.r_b is not None])
    tok = np.array(tokens)
    last = np.array([h.ids[-1] if h.ids else -1 for h in parents])
    empty = np.array([not h.ids for h in parents])
    # a repeated token must be separated from the previous one by a blank
    phi = np.where((tok == last)[:, None], r_b, np.logaddexp(r_n, r_b))
    xc = x[:, tok].T  # [C, T]
    new_n = np.full_like(r_n, _NEG)
    new_b = np.full_like(r_b, _NEG)
    new_n[:, 0] = np.where(empty, xc[:, 0], _NEG)
    psi = new_n[:, 0].copy()
    x_blank = x[:, blank]
    for t in range(1, t_max):
        new_n[:, t] = np.logaddexp(new_n[:, t - 1], phi[:, t - 1]) + xc[:, t]
        new_b[:, t] = np.logaddexp(new_n[:, t - 1], new_b[:, t - 1]) + x_blank[t]
        psi = np.logaddexp(psi, phi[:, t - 1] + xc[:, t])
    for i, h in enumerate(out):
        h.r_n, h.r_b, h.psi = new_n[i], new_b[i], float(psi[i])
