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

import math
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
    """A prefix in the beam: decoder and LM scores, and its CTC prefix state with the CTC prefix score ``psi``.

    The state is per frame: the probability that the prefix ends in its last token at frame t (``r_n``) or in a
    blank after it (``r_b``), kept in probability space in the units of :class:`_CtcFrames` times
    ``exp(ctc_scale)`` (natural log): the recursion is then products and sums instead of log-sum-exps."""

    ids: tuple[int, ...]
    am: float
    lms: float
    r_n: np.ndarray | None = None
    r_b: np.ndarray | None = None
    psi: float = 0.0
    oov: float = 0.0  # penalties for completed unknown words (≤ 0)
    ctc_scale: float = 0.0

    def ctc_logp(self, frames: _CtcFrames) -> float:
        """Log-probability of the audio's whole CTC labelling being this prefix (the sequence score)."""
        assert self.r_n is not None and self.r_b is not None
        end = float(self.r_n[-1] + self.r_b[-1])
        return math.log(end) + self.ctc_scale + float(frames.log_units[-1]) if end > 0 else _NEG


@dataclass(frozen=True)
class _CtcFrames:
    """CTC frame probabilities for the prefix recursion, each frame divided by its largest label probability:
    ``probs`` ``[T, V]`` (≤ 1, the best label 1) and ``log_units`` ``[T]``, the log of the product of those
    maxima up to each frame. A state value at frame t is in units of ``exp(log_units[t])``, so it falls only as
    far as its path is worse than each frame's best label and stays in the float64 range over long segments."""

    probs: np.ndarray
    log_units: np.ndarray

    @classmethod
    def from_logprobs(cls, logprobs: np.ndarray) -> _CtcFrames:
        x = np.asarray(logprobs, dtype=np.float64)
        top = x.max(axis=1)
        return cls(np.exp(x - top[:, None]), np.cumsum(top))

    def empty_prefix(self, blank: int) -> tuple[np.ndarray, np.ndarray]:
        """States of the empty prefix (blanks only, up to each frame)."""
        return np.zeros(self.probs.shape[0]), np.exp(np.cumsum(np.log(self.probs[:, blank])))


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
    x = _CtcFrames.from_logprobs(ctc_logprobs) if use_ctc and ctc_logprobs is not None else None
    lex = lexicon if lexicon is not None and opts.oov_penalty > 0 else None
    start = _Hyp((), 0.0, 0.0)
    if x is not None:
        start.r_n, start.r_b = x.empty_prefix(blank)
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
        if x is not None and h.r_n is not None and h.r_b is not None:
            score += cw * h.ctc_logp(x)  # the whole sequence, not a prefix
        return score

    best_hyp = max(beams, key=final_score)
    return Decoded(best_hyp.ids, best_hyp.am)


def _next_beams(row: np.ndarray, top: list[int], beams: list[_Hyp], opts: DecodeOptions, lm: TokenNgramLM | None,
                lw: float, cw: float, x: _CtcFrames | None, skip: float | None, lex: Lexicon | None,
                blank: int) -> list[_Hyp]:
    """One slot of the beam: every kept prefix extended by each of the slot's ``top`` tokens (and, with ``skip``,
    left as it is), scored, deduplicated and cut to ``opts.beam``.

    Candidate ``i`` is prefix ``i // k`` plus token ``top[i % k]``; the skips follow as ``n + j``. Scores are
    ``[beams, k]`` arrays; token tuples are built only for candidates taken in score order until the beam is
    full (the same tokens reached by skipping different slots count once, with their best score)."""
    k, nb = len(top), len(beams)
    n = k * nb
    row_scores = row[top].astype(np.float64)
    p_am = np.array([h.am for h in beams])
    p_lms = np.array([h.lms for h in beams])
    p_oov = np.array([h.oov for h in beams])
    am = p_am[:, None] + row_scores[None, :]
    lms = p_lms[:, None]
    if lm is not None:  # the LM history is built once per kept prefix, not once per candidate
        lps = [lm.logp_tokens((lm.bos, *h.ids[max(0, len(h.ids) + 1 - lm.order):]), top) for h in beams]
        lms = lms + np.array(lps)
    else:
        lms = np.broadcast_to(lms, (nb, k))
    oov = np.broadcast_to(p_oov[:, None], (nb, k))
    if lex is not None:  # a word-start piece completes the word before it: an unknown word there costs oov_penalty
        starts = np.array([lex.starts_word(t) for t in top])
        unknown = np.array([bool(h.ids) and lex.last_word_unknown(h.ids) for h in beams])
        oov = np.where(unknown[:, None] & starts[None, :], oov - opts.oov_penalty, oov)
    new_n = new_b = None
    psi = np.zeros((nb, k))
    if x is not None:
        r_n = np.repeat(np.stack([h.r_n for h in beams if h.r_n is not None]), k, axis=0)
        r_b = np.repeat(np.stack([h.r_b for h in beams if h.r_b is not None]), k, axis=0)
        last = np.repeat(np.array([h.ids[-1] if h.ids else -1 for h in beams]), k)
        empty = np.repeat(np.array([not h.ids for h in beams]), k)
        new_n, new_b, psi_log = _ctc_scores(x, r_n, r_b, np.array(top * nb), last, empty, blank)
        psi = np.maximum(psi_log.reshape(nb, k) + np.array([h.ctc_scale for h in beams])[:, None], _NEG)
    scores = (am + lw * lms + cw * psi + oov).ravel()
    if skip is not None:  # leave this slot out: the prefix keeps its scores and CTC state
        best = float(row.max())
        p_psi = np.array([h.psi for h in beams])
        scores = np.concatenate([scores, p_am + best - skip + lw * p_lms + cw * p_psi + p_oov])
    chosen: list[int] = []
    seen: set[tuple[int, ...]] = set()
    for i in np.argsort(-scores, kind="stable").tolist():
        ids = (*beams[i // k].ids, top[i % k]) if i < n else beams[i - n].ids
        if ids in seen:
            continue
        seen.add(ids)
        chosen.append(i)
        if len(chosen) == opts.beam:
            break
    extended = [i for i in chosen if i < n]
    states: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}
    if new_n is not None and new_b is not None and extended:
        # the survivors' states, rescaled so that their largest value is 1 (their scale keeps the log of it)
        sel = np.array(extended)
        sn, sb = new_n[sel], new_b[sel]
        peak = np.maximum(sn.max(axis=1), sb.max(axis=1))
        live = peak > 0
        div = np.where(live, peak, 1.0)
        sn, sb = sn / div[:, None], sb / div[:, None]
        shift = np.where(live, np.log(div), _NEG)
        for j, i in enumerate(extended):
            states[i] = (sn[j], sb[j], beams[i // k].ctc_scale + float(shift[j]))
    out: list[_Hyp] = []
    am_f, lms_f, oov_f, psi_f = am.ravel(), lms.ravel(), oov.ravel(), psi.ravel()
    for i in chosen:
        if i < n:
            h = beams[i // k]
            st = states.get(i)
            out.append(_Hyp((*h.ids, top[i % k]), float(am_f[i]), float(lms_f[i]),
                            None if st is None else st[0], None if st is None else st[1], float(psi_f[i]),
                            float(oov_f[i]), 0.0 if st is None else st[2]))
        else:
            h = beams[i - n]
            out.append(_Hyp(h.ids, h.am + best - skip if skip is not None else h.am, h.lms, h.r_n, h.r_b, h.psi,
                            h.oov, h.ctc_scale))
    return out


def _ctc_scores(frames: _CtcFrames, r_n: np.ndarray, r_b: np.ndarray, tok: np.ndarray, last: np.ndarray,
                empty: np.ndarray, blank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CTC prefix recursion for ``C`` candidates, in probability space: parents' states ``r_n``/``r_b``
    ``[C, T]`` (in ``frames``' units, each times its parent's scale), the token each adds ``tok``, its parent's last
    token ``last`` (-1: none) and whether the parent is empty → new ``r_n``, ``r_b`` ``[C, T]`` on the parents'
    scales and the log prefix probabilities ``psi`` ``[C]`` (natural log, less each parent's scale)."""
    x = frames.probs
    t_max, c = x.shape[0], tok.shape[0]
    # a repeated token must be separated from the previous one by a blank; frame-major ([T, C]) from here on, so
    # every step of the scan reads and writes contiguous rows in place
    phi = np.ascontiguousarray(np.where((tok == last)[:, None], r_b, r_n + r_b).T)
    xc = x[:, tok]  # [T, C]
    x_blank = x[:, blank]
    new_n = np.empty((t_max, c))
    new_b = np.empty((t_max, c))
    new_n[0] = np.where(empty, xc[0], 0.0)
    new_b[0] = 0.0
    for t in range(1, t_max):
        np.add(new_n[t - 1], phi[t - 1], out=new_n[t])
        new_n[t] *= xc[t]
        np.add(new_n[t - 1], new_b[t - 1], out=new_b[t])
        new_b[t] *= x_blank[t]
    # psi: the new token emitted at frame t after phi at t-1 (the empty prefix: at frame 0 too), summed over t; the
    # terms are in different frames' units, so the sum is taken in logs
    terms = np.empty((t_max, c))
    terms[0] = new_n[0]
    np.multiply(phi[:-1], xc[1:], out=terms[1:])
    with np.errstate(divide="ignore"):
        logs = np.log(terms) + frames.log_units[:, None]
    peak = logs.max(axis=0)
    live = np.isfinite(peak)
    safe = np.where(live, peak, 0.0)
    psi = np.where(live, safe + np.log(np.exp(logs - safe).sum(axis=0)), _NEG)
    return new_n.T, new_b.T, psi
