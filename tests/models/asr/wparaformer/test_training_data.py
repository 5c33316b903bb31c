"""Training text (sources, targets, the test-set exclusion) and the extra degradations of the corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.asr.wparaformer.corpus import Degradation, reverberate, spec_augment, telephone
from models.asr.wparaformer.text_corpus import TextMix, build_text, clean_line, read_exclusions, target_text


def test_target_text() -> None:
    assert target_text("A long close-fitting coat, worn in the 19th century!") == \
        "a long close fitting coat worn in the 19th century"
    assert target_text("'Don't' he said") == "don't he said"


def test_clean_line_filters() -> None:
    assert clean_line("  Two dogs   play. ") == "Two dogs play."
    assert clean_line("see http://x.org/a_b now") is None
    assert clean_line("too short") is None
    assert clean_line("THE BIG RED DOG RUNS") is None
    assert clean_line(" ".join(["word"] * 41)) is None


def test_build_text_excludes_test_transcripts(tmp_path: Path) -> None:
    m30k = tmp_path / "train.en"
    m30k.write_text("Two dogs play in the park.\nAsk what you can do for your country.\nA man rides a red bike.\n")
    tsv = tmp_path / "test.tsv"
    tsv.write_text("clip.wav\tAsk what you can do, for your country\n")
    ex = read_exclusions([tsv])
    lines = build_text(TextMix(wordnet=0, fortunes=0, multi30k=10, join_prob=0.0), multi30k=m30k, exclude=ex)
    assert sorted(lines) == ["A man rides a red bike.", "Two dogs play in the park."]


def test_degradations_keep_length_and_level() -> None:
    rng = np.random.default_rng(0)
    x = (0.5 * np.sin(np.arange(16000) / 10)).astype(np.float32)
    r = reverberate(x, 0.4, rng)
    assert r.shape == x.shape and np.max(np.abs(r)) == pytest.approx(np.max(np.abs(x)), rel=1e-4)
    assert not np.allclose(r, x)
    t = telephone(x)
    assert t.shape == x.shape
    mel = np.random.default_rng(1).standard_normal((80, 300)).astype(np.float32)
    d = Degradation(freq_masks=1, freq_width=10, time_masks=1, time_width=20)
    masked = spec_augment(mel, d, np.random.default_rng(3))
    assert masked.shape == mel.shape and (masked == mel.min()).sum() > 0
    assert not np.shares_memory(masked, mel)
