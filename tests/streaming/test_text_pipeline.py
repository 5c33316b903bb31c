"""TextPipeline: segmentation, one update per call, the caption events' fields, and the corpus replay."""

import itertools

import pytest

from streaming.events import CaptionEvent
from streaming.policies.reta import RetaOptions, RetaPolicy
from streaming.text_pipeline import TextPipeline, TextPipelineOptions, ends_sentence, replay_sentence
from tests.streaming.fakes import LexiconTranslator


def ticking(step_ms: float = 10.0):
    counter = itertools.count()
    return lambda: next(counter) * step_ms


def pipeline(**opts):
    tr = LexiconTranslator()
    clock_ms = itertools.count(0, 100)  # each event reads the stream clock: 0, 100, 200, ... ms
    p = TextPipeline(RetaPolicy(tr, RetaOptions(beam_size=1)), TextPipelineOptions(**opts),
                     clock=lambda: float(next(clock_ms)), timer=ticking())
    return p, tr


@pytest.mark.parametrize("word, ends", [("walks.", True), ("walks!", True), ("why?\"", True), ("(end.)", True),
                                        ("走。", True), ("walks", False), ("e.g", False), ("3.5", False)])
def test_sentence_end_rule(word, ends):
    assert ends_sentence(word) is ends


def test_a_sentence_end_closes_the_segment_and_the_next_one_starts():
    p, tr = pipeline()
    events = p.feed("a woman")
    assert [e.type for e in events] == ["partial"]
    assert tr.calls[-1][0] == "a woman"  # words given together: one update, not one per word
    assert len(tr.calls) == 1
    events = p.feed("walks. the man")
    assert [(e.type, e.segment) for e in events] == [("final", 0), ("partial", 1)]
    final = events[0]
    assert final.target == "eine Frau geht ." and final.stable == len(final.target.split())
    assert final.source == "a woman walks."
    assert events[1].source == "the man" and events[1].revision == 1
    assert [e.type for e in p.finish()] == ["final"]
    assert [s.source for s in p.segments] == ["a woman walks.", "the man"]
    assert p.finish() == []


def test_latency_is_the_compute_spent_on_the_segment_so_far():
    p, _ = pipeline()
    first = p.feed("a")[0]
    second = p.feed("woman")[0]
    assert first.latency_ms == pytest.approx(10.0)  # one update of 10 ms
    assert second.latency_ms == pytest.approx(20.0)  # the segment's two updates
    final = p.feed("walks.")[-1]
    assert final.type == "final" and final.latency_ms == pytest.approx(40.0)  # + the final update and finish
    assert p.compute_ms == pytest.approx(40.0)
    nxt = p.feed("the")[0]
    assert nxt.latency_ms == pytest.approx(10.0)  # a new segment starts from zero


def test_word_and_character_limits_cut_endless_sentences():
    p, _ = pipeline(max_segment_words=3)
    events = p.feed("a b c d e f g")
    assert [e.type for e in events] == ["final", "final", "partial"]
    assert [s.source for s in p.segments] == ["a b c", "d e f"]
    p, _ = pipeline(max_segment_chars=9)
    p.feed("aaaa bbbb cccc dd")
    assert [s.source for s in p.segments] == ["aaaa bbbb"]
    assert p.source_words == ("cccc", "dd")


def test_stream_times_come_from_the_clock():
    p, _ = pipeline()
    e1 = p.feed("a")[0]
    e2 = p.feed("man.")[0]
    assert e1.start_ms == e2.start_ms == 0.0  # the first word's arrival
    assert e2.end_ms > e1.end_ms
    seg = p.segments[0]
    assert (seg.start_ms, seg.end_ms) == (e2.start_ms, e2.end_ms)


def test_events_have_the_speech_pipelines_fields():
    p, _ = pipeline()
    msg = p.feed("a man.")[0].to_json()
    assert set(msg) == {f for f in CaptionEvent.__dataclass_fields__}


def test_without_sentence_splitting_a_line_is_one_segment():
    p, _ = pipeline(split_sentences=False)
    p.feed("a man. the woman", last=True)
    assert [s.source for s in p.segments] == ["a man. the woman"]


def test_replay_sentence_matches_the_record_of_the_segment():
    tr = LexiconTranslator()
    rec = replay_sentence(RetaPolicy(tr), "a man . walks", index=3, reference="ein Mann . geht", timer=ticking())
    assert rec.index == 3 and rec.reference == "ein Mann . geht"
    assert [c[0] for c in tr.calls] == ["a", "a man", "a man .", "a man . walks"]  # one line, one sentence
    assert rec.prediction == "ein Mann . geht"
    assert rec.updates == 5 and rec.compute_ms == pytest.approx(50.0)
    with pytest.raises(ValueError, match="empty"):
        replay_sentence(RetaPolicy(tr), "  ")
