"""ASR hypotheses → policy → caption for one segment: confirmed source words, ms delays, CA time."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from streaming.policies.reta import RetaPolicy
from streaming.policies.waitk_offline import OfflineWaitkPolicy, WaitkOptions
from streaming.speech_stream import SegmentTranslator, confirmed_prefix, written_form
from tests.streaming.fakes import LexiconContinuer, LexiconTranslator
from tests.streaming.test_reta import ticking_timer


@dataclass(frozen=True)
class Hyp:
    text: str
    final: bool
    audio_ms: float
    compute_ms: float = 50.0

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.text.split())


HYPS = [Hyp("a", False, 600), Hyp("a man", False, 1200), Hyp("a woman walks", False, 1800),
        Hyp("a woman walks", True, 2100)]


def test_confirmed_prefix():
    assert confirmed_prefix((), ("a",), final=False) == 0
    assert confirmed_prefix(("a",), ("a", "b"), final=False) == 1
    assert confirmed_prefix(("a", "b"), ("a", "c", "d"), final=False) == 1
    assert confirmed_prefix(("a", "b"), ("a", "b"), final=False) == 1  # the newest word may still change
    assert confirmed_prefix(("x",), ("a", "b"), final=True) == 2


def test_retranslation_consumes_revised_source_with_ms_delays():
    tr = LexiconTranslator()
    seg = SegmentTranslator(RetaPolicy(tr), timer=ticking_timer(10.0), written=False)
    for h in HYPS:
        seg.feed(h)
    rec = seg.finish(index=3, reference="eine Frau geht")
    assert [c[0] for c in tr.calls] == ["a", "a man", "a woman walks"]  # the final repeats 1800 ms words
    assert rec.revisions == ["ein", "ein Mann", "eine Frau geht", "eine Frau geht"]
    assert rec.prediction == "eine Frau geht" and rec.index == 3
    assert rec.delays == [1800, 1800, 1800]
    assert rec.source_length == 2100
    # elapsed = delay + ASR compute (3 × 50 ms) + policy compute (3 × 10 ms) at the 1800 ms update
    assert rec.elapsed == pytest.approx([1980, 1980, 1980])
    assert rec.erased_words() == 2


def test_waitk_reads_only_confirmed_words():
    tr = LexiconContinuer()
    seg = SegmentTranslator(OfflineWaitkPolicy(tr, WaitkOptions(k=1)), timer=ticking_timer(0.0), written=False)
    outs = [seg.feed(h).text for h in HYPS]
    # 600 ms: nothing confirmed; 1200 ms: "a" confirmed; 1800 ms: "man" was revised, only "a" stays confirmed
    assert outs[:3] == ["", "ein", "ein"]
    rec = seg.finish()
    assert rec.prediction == "ein Frau geht ."  # "ein" was written before "woman" was heard
    assert rec.erased_words() == 0


def test_written_form_capitalises_and_ends_a_final_segment():
    assert written_form((), final=True) == ()
    assert written_form(("a", "man"), final=False) == ("A", "man")
    assert written_form(("a", "man"), final=True) == ("A", "man.")
    assert written_form(("is", "it?"), final=True) == ("Is", "it?")


def test_policy_reads_the_written_form_and_the_caption_source_stays_as_heard():
    tr = LexiconTranslator()
    seg = SegmentTranslator(RetaPolicy(tr), timer=ticking_timer(10.0))
    for h in HYPS:
        seg.feed(h)
    rec = seg.finish()
    assert [c[0] for c in tr.calls] == ["A", "A man", "A woman walks", "A woman walks."]
    assert rec.prediction == "eine Frau geht ."
    assert seg.source_words == ("a", "woman", "walks") and rec.source == "a woman walks"
