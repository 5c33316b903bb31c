"""Quality and flicker: BLEU and chrF (sacrebleu, defaults: cased, detokenised), WER (jiwer), Normalized Erasure."""

from __future__ import annotations

from collections.abc import Sequence

import jiwer
import sacrebleu


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus BLEU with its default settings (13a tokenisation, cased)."""
    _same_length(hypotheses, references)
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus chrF (character 6-grams, β = 2)."""
    _same_length(hypotheses, references)
    return float(sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score)


def word_error_rate(hypotheses: Sequence[str], references: Sequence[str], *, normalize: bool = True) -> float:
    """Corpus WER in percent (jiwer). With ``normalize``: lower-case, punctuation removed, spaces collapsed."""
    _same_length(hypotheses, references)
    refs, hyps = list(references), list(hypotheses)
    if normalize:
        tf = jiwer.Compose(
            [jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip()]
        )
        refs, hyps = [tf(r) for r in refs], [tf(h) for h in hyps]
    pairs = [(r, h) for r, h in zip(refs, hyps, strict=False) if r.strip()]
    if not pairs:
        raise ValueError("WER needs at least one non-empty reference")
    return 100.0 * float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))


def normalized_erasure(erased: Sequence[int], final_lengths: Sequence[int]) -> float:
    """Corpus Normalized Erasure: Σ words erased between displayed outputs / Σ final output length."""
    total = sum(final_lengths)
    return float(sum(erased)) / total if total else 0.0


def _same_length(hyps: Sequence[str], refs: Sequence[str]) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
