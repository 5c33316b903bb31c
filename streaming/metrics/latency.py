"""Sentence- and corpus-level latency exactly as SimulEval 1.1.x (``latency_scorer.py``) computes them.

Delays are per target word, in source words (text) or ms (speech). ``source_length`` is in the same
unit. ``reference_length`` is the reference's word count (``None`` when there is no reference).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from statistics import mean

Delays = Sequence[float]


def average_lagging(delays: Delays, source_length: float, target_length: float) -> float:
    """AL (STACL): mean over i ≤ τ of D_i − (i−1)·|X|/|Y|, τ = first i with D_i ≥ |X|; D_1 if D_1 > |X|."""
    _check(delays, source_length)
    if delays[0] > source_length:
        return float(delays[0])
    gamma = target_length / source_length
    total, tau = 0.0, 0
    for i_minus_1, d in enumerate(delays):
        total += d - i_minus_1 / gamma
        tau = i_minus_1 + 1
        if d >= source_length:
            break
    return total / tau


def length_adaptive_average_lagging(delays: Delays, source_length: float, target_length: float) -> float:
    """LAAL: AL with |Y| replaced by max(|Y|, |Y*|) (hypothesis length |Y*| = number of delays)."""
    return average_lagging(delays, source_length, max(len(delays), target_length))


def differentiable_average_lagging(delays: Delays, source_length: float, target_length: float | None = None) -> float:
    """DAL (MILk): lags made monotone with a 1/γ minimum step; always uses the hypothesis length."""
    _check(delays, source_length)
    n = len(delays)
    gamma = n / source_length
    total, g_prev = 0.0, 0.0
    for i_minus_1, g in enumerate(delays):
        g_prime = g if i_minus_1 == 0 else max(g, g_prev + 1 / gamma)
        total += g_prime - i_minus_1 / gamma
        g_prev = g_prime
    return total / n


def average_proportion(delays: Delays, source_length: float, target_length: float) -> float:
    """AP: Σ D_i / (|X| · |Y|), |Y| the reference length when given."""
    _check(delays, source_length)
    return float(sum(delays)) / (source_length * target_length)


def _check(delays: Delays, source_length: float) -> None:
    if len(delays) == 0:
        raise ValueError("no delays: latency is undefined for an empty prediction")
    if source_length <= 0:
        raise ValueError("source_length must be positive")


SentenceMetric = Callable[[Delays, float, float], float]

LATENCY_METRICS: dict[str, SentenceMetric] = {
    "AL": average_lagging,
    "LAAL": length_adaptive_average_lagging,
    "DAL": differentiable_average_lagging,
    "AP": average_proportion,
}


@dataclass(frozen=True)
class LatencyInput:
    """One instance as the latency scorers see it."""

    delays: Sequence[float]
    source_length: float
    reference_length: int | None = None
    elapsed: Sequence[float] | None = None


def sentence_latency(name: str, delays: Delays, source_length: float, reference_length: int | None) -> float:
    """One metric on one instance; |Y| is the reference length when known, else the hypothesis length."""
    target_length = reference_length if reference_length is not None else len(delays)
    return LATENCY_METRICS[name](delays, source_length, target_length)


def corpus_latency(instances: Iterable[LatencyInput], *, computation_aware: bool = False) -> dict[str, float]:
    """Mean of each metric over instances with a non-empty prediction (SimulEval's corpus value).

    With ``computation_aware`` the ``elapsed`` times replace the delays and the keys get a ``_CA`` suffix.
    Returns an empty dict when no instance has a prediction.
    """
    scores: dict[str, list[float]] = {k: [] for k in LATENCY_METRICS}
    for ins in instances:
        times = ins.elapsed if computation_aware else ins.delays
        if times is None:
            raise ValueError("computation-aware latency needs 'elapsed' on every instance")
        if len(times) == 0:
            continue
        for name in LATENCY_METRICS:
            scores[name].append(sentence_latency(name, times, ins.source_length, ins.reference_length))
    suffix = "_CA" if computation_aware else ""
    return {f"{k}{suffix}": mean(v) for k, v in scores.items() if v}
