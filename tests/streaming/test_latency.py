"""Hand-worked values for SimulEval 1.1.x latency metrics, including the corner cases."""

import pytest

from streaming.metrics.latency import (
    LatencyInput,
    average_lagging,
    average_proportion,
    corpus_latency,
    differentiable_average_lagging,
    length_adaptive_average_lagging,
    sentence_latency,
)


def test_al_wait1_diagonal():
    # gamma = 1: lags 1-0, 2-1, 3-2, 4-3 -> 1 each; tau = 4.
    assert average_lagging([1, 2, 3, 4], 4, 4) == pytest.approx(1.0)


def test_al_tau_cutoff_at_first_delay_reaching_source_length():
    # i=1: 2-0 = 2; i=2: 4-1 = 3 and D_2 >= |X| stops the sum: (2+3)/2
    assert average_lagging([2, 4, 4, 4], 4, 4) == pytest.approx(2.5)


def test_al_first_delay_beyond_source_returns_it():
    assert average_lagging([5, 5], 4, 2) == 5
    # equal to |X| is not the shortcut: (4 - 0) / 1
    assert average_lagging([4, 4], 4, 2) == pytest.approx(4.0)


def test_al_uses_given_target_length_laal_uses_the_longer():
    # AL with |Y| = 1 (reference): gamma = 1/4, lag 2 = 3 - 1*4 = -1 -> (1 - 1)/2 = 0
    assert average_lagging([1, 3], 4, 1) == pytest.approx(0.0)
    # LAAL uses max(|Y|=1, |Y*|=2) = 2: gamma = 1/2, lag 2 = 3 - 2 = 1 -> (1 + 1)/2 = 1
    assert length_adaptive_average_lagging([1, 3], 4, 1) == pytest.approx(1.0)
    # with a longer reference both agree: gamma = 1 -> (1 + 2)/2
    assert average_lagging([1, 3], 4, 4) == length_adaptive_average_lagging([1, 3], 4, 4) == pytest.approx(1.5)


def test_dal_monotone_minimum_step_and_hypothesis_length():
    # |Y*| = 3, gamma = 3/4: g' = 2, max(2, 2+4/3), max(4, 10/3+4/3) -> lags 2, 2, 2
    assert differentiable_average_lagging([2, 2, 4], 4) == pytest.approx(2.0)
    # the reference length is ignored
    assert differentiable_average_lagging([2, 2, 4], 4, 10) == pytest.approx(2.0)


def test_ap_with_reference_length():
    assert average_proportion([1, 2, 3], 3, 4) == pytest.approx(6 / 12)
    assert sentence_latency("AP", [1, 2, 3], 3, None) == pytest.approx(6 / 9)


def test_speech_units_ms():
    # 3 words at 1000, 2000, 3000 ms of a 3000 ms source, reference of 3 words: gamma = 1/1000
    assert average_lagging([1000, 2000, 3000], 3000, 3) == pytest.approx((1000 + 1000 + 1000) / 3)


def test_corpus_mean_skips_empty_predictions_and_ca_suffix():
    ins = [
        LatencyInput([1, 2, 3, 4], 4, 4, elapsed=[2, 3, 4, 5]),
        LatencyInput([], 5, 3, elapsed=[]),
        LatencyInput([2, 4, 4, 4], 4, 4, elapsed=[3, 5, 5, 5]),
    ]
    out = corpus_latency(ins)
    assert out["AL"] == pytest.approx((1.0 + 2.5) / 2)
    ca = corpus_latency(ins, computation_aware=True)
    # elapsed [2,3,4,5]: lags 2,2,2,2 cut at 4 (i=3) -> 2; [3,5,...]: 3 then 5-1=4 cut -> 3.5
    assert ca["AL_CA"] == pytest.approx((2.0 + 3.5) / 2)
    assert set(ca) == {"AL_CA", "LAAL_CA", "DAL_CA", "AP_CA"}


def test_empty_inputs_raise_or_return_nothing():
    with pytest.raises(ValueError):
        average_lagging([], 3, 3)
    with pytest.raises(ValueError):
        average_lagging([1], 0, 3)
    assert corpus_latency([LatencyInput([], 3, 3)]) == {}
