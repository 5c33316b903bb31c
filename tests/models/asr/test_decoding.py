"""Token n-gram LM (Kneser–Ney) and the fused beam search with CTC rescoring over Paraformer slots."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from models.asr.decoding import DecodeOptions, decode, greedy
from models.asr.lm import TokenNgramLM

V, BOS, EOS = 12, 1, 2  # 0 blank, 1 <s>, 2 </s>, 3 <unk>, 4..11 "words"
CORPUS = [[4, 5, 6], [4, 5, 7], [4, 8, 6], [9, 5, 6, 10], [4, 5, 6, 11], [8, 6]]


NEG = -1e30


def ctc_sequence_logp(logprobs: np.ndarray, hyps: list[tuple[int, ...]], *, blank: int = 0) -> np.ndarray:
    """log p_CTC(y | x) of each token sequence in ``hyps`` given frame log-probs ``[T, V]`` (the forward algorithm,
    all hypotheses at once); a sequence that cannot fit into ``T`` frames gets ``-1e30``."""
    t_max = logprobs.shape[0]
    h = len(hyps)
    s_max = 2 * max((len(y) for y in hyps), default=0) + 1
    ext = np.full((h, s_max), blank, dtype=np.int64)  # blank, y1, blank, y2, …, blank; padded with blanks
    valid = np.zeros((h, s_max), dtype=bool)
    for i, y in enumerate(hyps):
        ext[i, 1 : 2 * len(y) : 2] = y
        valid[i, : 2 * len(y) + 1] = True
    # the skip transition s-2 → s is allowed into a token that differs from the token two states back
    can_skip = np.zeros((h, s_max), dtype=bool)
    can_skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    emit = logprobs[:, ext]  # [T, H, S]
    alpha = np.full((h, s_max), NEG)
    alpha[:, 0] = emit[0, :, 0]
    if s_max > 1:
        alpha[:, 1] = emit[0, :, 1]
    for t in range(1, t_max):
        stay = alpha
        step = np.concatenate([np.full((h, 1), NEG), alpha[:, :-1]], axis=1)
        jump = np.where(can_skip, np.concatenate([np.full((h, 2), NEG), alpha[:, :-2]], axis=1), NEG)
        alpha = np.logaddexp(np.logaddexp(stay, step), jump) + emit[t]
        alpha = np.where(valid, alpha, NEG)
    out = np.empty(h)
    for i, y in enumerate(hyps):
        last = 2 * len(y)
        out[i] = np.logaddexp(alpha[i, last], alpha[i, last - 1]) if last else alpha[i, 0]
        if out[i] < NEG / 2:
            out[i] = NEG
    return out


def _lm(order: int = 3) -> TokenNgramLM:
    return TokenNgramLM.estimate(CORPUS, order=order, vocab_size=V, bos=BOS, eos=EOS)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_kneser_ney_distributions_sum_to_one(order: int) -> None:
    lm = _lm(order)
    for hist in [(BOS,), (BOS, 4), (BOS, 4, 5), (4, 5), (9, 5), (7, 7), (BOS, 11, 3), (6,)]:
        total = sum(math.exp(lm.logp(hist, w)) for w in range(V))
        assert total == pytest.approx(1.0, abs=1e-9), (order, hist)


def test_lm_prefers_seen_continuations_and_round_trips(tmp_path: Path) -> None:
    lm = _lm()
    assert lm.logp((BOS, 4), 5) > lm.logp((BOS, 4), 9)
    assert lm.sentence_logp([4, 5, 6]) > lm.sentence_logp([6, 5, 4])
    lm.words = frozenset({"dog", "runs"})
    back = TokenNgramLM.load(lm.save(tmp_path / "lm.npz"))
    assert back.words == lm.words
    for hist, w in itertools.product([(BOS,), (BOS, 4), (4, 5), (7, 3)], range(V)):
        assert back.logp(hist, w) == pytest.approx(lm.logp(hist, w), abs=1e-5)
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="not a token n-gram LM"):
        TokenNgramLM.load(tmp_path / "bad.npz")


def _ctc_brute(lp: np.ndarray, ys: tuple[int, ...]) -> float:
    """Sum over every frame labelling that collapses to ``ys`` (blank 0)."""
    total = -np.inf
    for path in itertools.product(range(lp.shape[1]), repeat=lp.shape[0]):
        collapsed = [p for i, p in enumerate(path) if p != 0 and (i == 0 or p != path[i - 1])]
        if tuple(collapsed) == ys:
            total = np.logaddexp(total, sum(lp[t, p] for t, p in enumerate(path)))
    return float(total)


def test_ctc_forward_equals_the_sum_over_alignments() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4))
    lp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    hyps = [(1,), (1, 2), (2, 2), (1, 2, 3), (3, 3, 3), ()]
    got = ctc_sequence_logp(lp, hyps)
    for h, g in zip(hyps, got, strict=True):
        assert g == pytest.approx(_ctc_brute(lp, h), abs=1e-9), h
    assert ctc_sequence_logp(lp[:2], [(1, 1, 1)])[0] <= -1e29  # needs 5 frames


def _slots(*rows: dict[int, float]) -> np.ndarray:
    out = np.full((len(rows), V), -20.0)
    for i, r in enumerate(rows):
        for t, p in r.items():
            out[i, t] = math.log(p)
    return out


def test_zero_weights_are_argmax_and_the_lm_settles_a_close_slot() -> None:
    dec = _slots({4: 0.9, 9: 0.1}, {5: 0.45, 8: 0.55}, {6: 0.8, 7: 0.2})
    assert decode(dec, DecodeOptions.greedy(), lm=_lm()).ids == greedy(dec).ids == (4, 8, 6)
    assert decode(dec, DecodeOptions(lm_weight=0.0), lm=_lm()).ids == (4, 8, 6)
    fused = decode(dec, DecodeOptions(lm_weight=1.0, beam=4, top_k=3), lm=_lm())
    assert fused.ids == (4, 5, 6)  # "4 5" is far more frequent than "4 8"
    assert fused.score == pytest.approx(math.log(0.9) + math.log(0.45) + math.log(0.8))


def test_ctc_rescoring_drops_a_doubled_slot() -> None:
    # the decoder got one slot too many and repeats token 5; CTC frames say "4 5 6"
    dec = _slots({4: 0.95}, {5: 0.9}, {5: 0.6, 6: 0.3}, {6: 0.9})
    frames = np.full((8, V), math.log(1e-4))
    for t, tok in enumerate([4, 0, 5, 5, 0, 6, 0, 0]):
        frames[t, tok] = 0.0
    frames -= np.log(np.exp(frames).sum(axis=1, keepdims=True))
    opts = DecodeOptions(lm_weight=0.0, ctc_weight=0.7, skip_penalty=6.0)
    assert greedy(dec).ids == (4, 5, 5, 6)
    assert decode(dec, opts, ctc_logprobs=frames).ids == (4, 5, 6)
    no_skip = DecodeOptions(lm_weight=0.0, ctc_weight=0.7, skip_penalty=0.0)
    assert len(decode(dec, no_skip, ctc_logprobs=frames).ids) == 4  # without skips the length is the CIF count
    with pytest.raises(ValueError, match="≥ 0"):
        DecodeOptions(lm_weight=-1.0)


def test_ctc_corrects_slots_over_a_long_segment() -> None:
    """800 frames, 40 tokens, blanks only likely: every path's probability is far below the float64 range, so this
    checks the rescaled states. Where the decoder slightly prefers a wrong token, the CTC frames win."""
    rng = np.random.default_rng(7)
    planted = [int(t) for t in rng.integers(4, V, size=40)]
    frames = np.full((800, V), math.log(0.7 / (V - 1)))
    frames[:, 0] = math.log(0.3)  # blank the likeliest label between the tokens
    for i, tok in enumerate(planted):
        t = 10 + 20 * i
        frames[t] = math.log(0.2 / (V - 1))
        frames[t, tok] = math.log(0.8)
    frames -= np.log(np.exp(frames).sum(axis=1, keepdims=True))
    assert float(frames.max(axis=1).sum()) < -745  # even the best path's probability underflows
    wrong = {3: 9 if planted[3] != 9 else 10, 21: 4 if planted[21] != 4 else 5, 38: 11 if planted[38] != 11 else 6}
    dec = _slots(*({wrong[i]: 0.5, tok: 0.4} if i in wrong else {tok: 0.9} for i, tok in enumerate(planted)))
    assert greedy(dec).ids != tuple(planted)
    got = decode(dec, DecodeOptions(lm_weight=0.0, ctc_weight=0.7, skip_penalty=6.0, beam=8), ctc_logprobs=frames)
    assert got.ids == tuple(planted)


def test_ctc_prefix_recursion_ends_at_the_sequence_probability() -> None:
    """The probability-space recursion (per-frame units, states rescaled as the beam does it) gives every prefix
    at least its sequence probability and ends at exactly the sequence probability of the forward algorithm."""
    from models.asr.decoding import _ctc_scores, _CtcFrames, _Hyp

    rng = np.random.default_rng(3)
    logits = rng.normal(size=(9, 5))
    x = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    frames = _CtcFrames.from_logprobs(x)
    for seq in [(1, 2, 2), (3,), (4, 1, 4, 1)]:
        h = _Hyp((), 0.0, 0.0, *frames.empty_prefix(0))
        for t in seq:
            assert h.r_n is not None and h.r_b is not None
            r_n, r_b, psi = _ctc_scores(frames, h.r_n[None], h.r_b[None], np.array([t]),
                                        np.array([h.ids[-1] if h.ids else -1]), np.array([not h.ids]), blank=0)
            peak = max(r_n.max(), r_b.max())
            nxt = _Hyp((*h.ids, t), 0.0, 0.0, r_n[0] / peak, r_b[0] / peak, float(psi[0]) + h.ctc_scale,
                       ctc_scale=h.ctc_scale + float(np.log(peak)))
            assert nxt.psi >= float(ctc_sequence_logp(x, [nxt.ids])[0]) - 1e-9  # a prefix is at least as likely
            h = nxt
        assert h.ctc_logp(frames) == pytest.approx(float(ctc_sequence_logp(x, [seq])[0]))


def test_model_directory_names_its_lm(tiny_export: tuple[Path, object], tmp_path: Path) -> None:
    import shutil

    from models.asr.lm import enable_in_config
    from models.asr.runtime import ModelDirError, ParaformerOnnx
    from tests.conftest import TINY_TOKENS, chirp

    src, _ = tiny_export
    d = tmp_path / "with-lm"
    shutil.copytree(src, d)
    plain = ParaformerOnnx(d)
    assert plain.lm is None and plain.decoding_summary.startswith("beam") and "CTC" in plain.decoding_summary
    lm = TokenNgramLM.estimate([[4, 5, 6], [4, 7]], order=3, vocab_size=len(TINY_TOKENS), bos=1, eos=2)
    lm.save(d / "lm.npz")
    assert enable_in_config(d, "lm.npz")
    rt = ParaformerOnnx(d)
    assert rt.lm is not None and "LM 0.7 (lm.npz)" in rt.decoding_summary
    audio = chirp(2.0, seed=3)
    assert isinstance(rt.transcribe(audio), str)
    greedy_rt = ParaformerOnnx(d, decoding=DecodeOptions.greedy())
    assert greedy_rt.lm is None and greedy_rt.decoding_summary == "greedy"
    (d / "lm.npz").unlink()
    with pytest.raises(ModelDirError, match=r"lm\.npz, which is missing"):
        ParaformerOnnx(d)


def test_unknown_words_cost_the_oov_penalty() -> None:
    from models.asr.decoding import Lexicon

    pieces = ["<blank>", "<s>", "</s>", "<unk>", "▁cat", "▁ca", "tt", "▁dog"]
    lex = Lexicon(frozenset({"cat", "dog"}), pieces, {0, 1, 2, 3})
    assert lex.last_word_unknown((5, 6)) and not lex.last_word_unknown((4, 3)) and lex.last_word_unknown((4, 5))
    dec = np.full((2, len(pieces)), -20.0)
    dec[0, 5], dec[0, 4] = math.log(0.6), math.log(0.4)  # "▁ca" or "▁cat"
    dec[1, 6], dec[1, 7] = math.log(0.6), math.log(0.4)  # "tt" or "▁dog"
    assert greedy(dec).ids == (5, 6)  # "catt"
    only_lex = DecodeOptions(lm_weight=0.0, ctc_weight=0.0, oov_penalty=2.0)
    assert decode(dec, only_lex, lexicon=lex).ids == (4, 7)  # "cat dog": both words known
    assert decode(dec, DecodeOptions(lm_weight=0.0, ctc_weight=0.0, oov_penalty=0.0), lexicon=lex).ids == (5, 6)
