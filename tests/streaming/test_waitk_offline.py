"""Test-time wait-k over an offline translator: read/write schedule, no revisions, prefix forcing."""

import itertools

import pytest

from streaming.policies.waitk_offline import OfflineWaitkPolicy, WaitkOptions
from streaming.text_pipeline import replay_sentence
from streaming.types import SourceState
from tests.streaming.fakes import LexiconContinuer
from tests.streaming.test_reta import ticking_timer


@pytest.mark.parametrize("k", [1, 2, 3])
def test_schedule_writes_one_word_per_read_after_k(k):
    src = "the man walks runs the man"
    rec = replay_sentence(OfflineWaitkPolicy(LexiconContinuer(), WaitkOptions(k=k)), src, timer=ticking_timer())
    n = len(src.split())
    # word t is written after reading min(k + t - 1, n) source words
    assert rec.delays == [min(k + t - 1, n) for t in range(1, len(rec.delays) + 1)]
    assert rec.prediction == "der Mann geht rennt der Mann ."
    assert rec.erased_words() == 0
    # every displayed revision extends the previous one
    for a, b in itertools.pairwise(rec.revisions or []):
        assert b.startswith(a)


def test_written_words_are_forced_and_never_revised():
    tr = LexiconContinuer()
    rec = replay_sentence(OfflineWaitkPolicy(tr, WaitkOptions(k=1)), "a woman walks", timer=ticking_timer())
    # "a" alone translates to "ein"; once written it stays, even though "woman" would make it "eine"
    assert rec.prediction == "ein Frau geht ."
    assert [c[2] for c in tr.calls] == ["", "ein", "ein Frau"]


def test_no_premature_period_and_only_stable_asr_words_are_read():
    pol = OfflineWaitkPolicy(LexiconContinuer(), WaitkOptions(k=1))
    out = pol.update(SourceState(("the", "man"), 600, stable=1))
    assert out.tokens == ("der",) and out.stable == 1  # "man" is not stable yet; no "." written
    out = pol.update(SourceState(("the", "woman", "runs"), 900, stable=3))
    assert out.tokens == ("der", "Frau", "rennt")
    final = pol.finish()
    assert final.final and final.tokens == ("der", "Frau", "rennt", ".")


def test_options_validated():
    with pytest.raises(ValueError):
        WaitkOptions(k=0)
