"""The one speech-replay scorer (``replay`` and ``benchmarks.speech_eval``) and the run summary figures."""

from __future__ import annotations

import pytest

from streaming.events import SegmentResult
from streaming.instance import InstanceRecord, score_instances
from streaming.longform import LongFormScorer, stream_records, timed_words
from streaming.metrics.runtime import mean_latency_ms, real_time_factor, rounded


def segment(index: int, start: float, end: float, prediction: str, delays: list[float],
            revisions: list[str], compute_ms: float, source: str) -> SegmentResult:
    record = InstanceRecord(index=index, prediction=prediction, delays=delays, elapsed=[d + 50.0 for d in delays],
                            source_length=end - start, revisions=revisions, compute_ms=compute_ms, updates=3)
    return SegmentResult(index, start, end, record.compact(), source)


def talk() -> list[SegmentResult]:
    """Two VAD segments of a 10 s stream whose words straddle two reference sentences."""
    return [segment(0, 1000.0, 3000.0, "Ein Mann geht .", [500.0, 800.0, 1500.0, 2000.0],
                    ["Ein", "Ein Frau", "Ein Mann geht ."], 120.0, "a man walks ."),
            segment(1, 5000.0, 8000.0, "Eine Frau rennt .", [400.0, 900.0, 2500.0, 3000.0],
                    ["Eine", "Eine Frau rennt ."], 80.0, "a woman runs .")]


def test_timed_words_are_in_stream_time() -> None:
    words = timed_words(talk())
    assert [w.text for w in words][:2] == ["Ein", "Mann"]
    assert [w.delay for w in words] == [1500.0, 1800.0, 2500.0, 3000.0, 5400.0, 5900.0, 7500.0, 8000.0]
    assert words[0].elapsed == 1550.0 and (words[4].segment_start, words[4].segment_end) == (5000.0, 8000.0)


def test_long_form_stream_is_scored_per_reference_sentence() -> None:
    scorer = LongFormScorer()
    recs = scorer.add(talk(), 10000.0, reference="Ein Mann geht . Eine Frau rennt .",
                      sentence_times=[(900.0, 3200.0), (4800.0, 8200.0)])
    assert [r.prediction for r in recs] == ["Ein Mann geht .", "Eine Frau rennt ."]
    assert recs[1].delays == [600.0, 1100.0, 2700.0, 3200.0]  # ms from the sentence's start (4800 ms)
    assert recs[0].source == "a man walks . a woman runs ." and recs[1].source is None
    assert [r.erased for r in recs] == [1, 0] and [r.compute_ms for r in recs] == [120.0, 80.0]
    scores = scorer.scores(["a man walks . a woman runs ."], wall_ms=2500.0)
    # the hand-made figures the two scorers used to patch in: Σ erased / Σ words and Σ compute / audio
    assert scores["NE"] == pytest.approx(1 / 8) and scores["rtf"] == pytest.approx(200.0 / 10000.0)
    assert scores["wall_rtf"] == 0.25 and scores["audio_s"] == 10.0 and scores["files"] == 1
    assert scores["WER"] == 0.0 and scores["n"] == 2 and scores["BLEU"] == pytest.approx(100.0)
    # what `simulsub score` reads back from the instances log
    again = score_instances([InstanceRecord.from_json(r.to_json()) for r in scorer.records])
    for key in ("NE", "rtf", "LAAL", "AL_CA", "BLEU"):
        assert again[key] == pytest.approx(scores[key], rel=1e-12), key


def test_streams_without_reference_and_bad_sentence_times() -> None:
    scorer = LongFormScorer()
    (rec,) = scorer.add(talk(), 10000.0)
    assert rec.index == 0 and rec.source_length == 10000.0 and rec.delays[0] == 1500.0 and rec.reference is None
    (second,) = scorer.add([], 2000.0)
    assert second.index == 1 and second.prediction == "" and second.extra["audio_ms"] == 2000.0
    scores = scorer.scores()
    assert scores["files"] == 2 and scores["audio_s"] == 12.0 and "WER" not in scores and "wall_rtf" not in scores
    with pytest.raises(ValueError, match="2 sentence times for 1 reference"):
        stream_records(talk(), 10000.0, index=0, reference="Ein Satz.", sentence_times=[(0.0, 1.0), (1.0, 2.0)])


def test_no_audio_means_no_real_time_factor() -> None:
    assert LongFormScorer().scores(wall_ms=10.0)["rtf"] == 0.0
    assert real_time_factor(50.0, 0.0) is None and real_time_factor(50.0, 1000.0) == 0.05
    assert mean_latency_ms([]) is None and mean_latency_ms([100.0, 300.0]) == 200.0
    assert rounded(None, 1) is None and rounded(0.123456, 4) == 0.1235

