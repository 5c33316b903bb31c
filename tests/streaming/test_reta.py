"""ReTA policy and the word-by-word text stream runner, with a lexicon stand-in translator."""

import itertools

import pytest

from streaming.policies.reta import RetaOptions, RetaPolicy
from streaming.text_pipeline import TextPipelineOptions, replay_sentence
from streaming.types import SourceState
from tests.streaming.fakes import LexiconTranslator


def ticking_timer(step_ms: float = 10.0):
    """A fake clock advancing ``step_ms`` per reading: every measured call costs exactly ``step_ms``."""
    counter = itertools.count()
    return lambda: next(counter) * step_ms


def test_reta_retranslates_every_prefix_and_revises():
    tr = LexiconTranslator()
    rec = replay_sentence(RetaPolicy(tr, RetaOptions(beam_size=2)), "a woman walks", reference="eine Frau geht",
                            timer=ticking_timer())
    assert [c[0] for c in tr.calls] == ["a", "a woman", "a woman walks"]
    assert all(c[1] == 2 for c in tr.calls)
    assert rec.revisions == ["ein", "eine Frau", "eine Frau geht"]
    assert rec.prediction == "eine Frau geht"
    assert rec.delays == [2, 2, 3]
    assert rec.erased_words() == 1
    # 3 updates + finish, 10 ms each; elapsed = delay + compute so far / 400 ms per word
    assert rec.compute_ms == pytest.approx(40.0)
    assert rec.updates == 4
    assert rec.elapsed == pytest.approx([2 + 20 / 400, 2 + 20 / 400, 3 + 30 / 400])


def test_forced_prefix_never_revises_displayed_words():
    tr = LexiconTranslator()
    rec = replay_sentence(RetaPolicy(tr, RetaOptions(prefix="forced")), "a woman walks", timer=ticking_timer())
    assert rec.revisions == ["ein", "ein Frau", "ein Frau geht"]
    assert rec.erased_words() == 0
    assert [c[2] for c in tr.calls] == ["", "ein", "ein Frau"]


def test_forced_prefix_with_mask_keeps_only_displayed_words():
    tr = LexiconTranslator()
    replay_sentence(RetaPolicy(tr, RetaOptions(prefix="forced", mask_k=1)), "a woman walks .",
                      options=TextPipelineOptions(mask_k=1), timer=ticking_timer())
    # step 2 displayed nothing from "ein" masked -> no prefix; step 3 displays "eine"
    assert [c[2] for c in tr.calls] == ["", "", "eine", "eine Frau"]


def test_biased_prefix_passes_previous_output_and_beta():
    tr = LexiconTranslator()
    replay_sentence(RetaPolicy(tr, RetaOptions(prefix="biased", prefix_beta=0.3)), "a woman walks",
                      timer=ticking_timer())
    assert [(c[2], c[3]) for c in tr.calls] == [("", 0.0), ("ein", 0.3), ("eine Frau", 0.3)]


def test_finish_without_final_update_translates_full_source_once():
    tr = LexiconTranslator()
    pol = RetaPolicy(tr)
    pol.update(SourceState(("a", "man"), 2))
    out = pol.finish()
    assert out.final and out.tokens == ("ein", "Mann") and out.stable == 2
    assert len(tr.calls) == 1  # same words: the final state reuses the translation
    assert pol.finish() is out


def test_revised_asr_source_is_retranslated():
    tr = LexiconTranslator()
    pol = RetaPolicy(tr)
    assert pol.update(SourceState(("a", "man"), 600, stable=1)).text == "ein Mann"
    assert pol.update(SourceState(("a", "woman"), 900, stable=1)).text == "eine Frau"


def test_options_validated():
    with pytest.raises(ValueError):
        RetaOptions(beam_size=0)
    with pytest.raises(ValueError):
        RetaOptions(prefix="always")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RetaOptions(prefix_beta=1.5)


def test_empty_source_rejected():
    with pytest.raises(ValueError):
        replay_sentence(RetaPolicy(LexiconTranslator()), "   ")


def test_partial_outputs_lose_sentence_final_punctuation():
    from streaming.policies.reta import strip_sentence_end

    assert strip_sentence_end(("Ein", "Mann."), ("a", "man")) == ("Ein", "Mann")
    assert strip_sentence_end(("Ein", "Mann", "."), ("a", "man")) == ("Ein", "Mann")
    assert strip_sentence_end(("?",), ("what",)) == ()
    assert strip_sentence_end(("Ein", "Mann."), ("a", "man.")) == ("Ein", "Mann.")
    assert strip_sentence_end(("z.B", "ein"), ("e.g.", "a")) == ("z.B", "ein")


def test_reta_strips_period_until_the_source_is_finished():
    tr = LexiconTranslator()
    rec = replay_sentence(RetaPolicy(tr), "a man walks .", timer=ticking_timer())
    assert rec.revisions == ["ein", "ein Mann", "ein Mann geht", "ein Mann geht ."]
    tr2 = LexiconTranslator()
    rec2 = replay_sentence(RetaPolicy(tr2, RetaOptions(strip_partial_eos=False)), "a man . walks",
                             timer=ticking_timer())
    assert rec2.revisions[2] == "ein Mann ."
