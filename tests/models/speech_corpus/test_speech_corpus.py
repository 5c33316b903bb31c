"""The synthetic corpus tool: deterministic voices, held-out voice pairs, degradation, a tiny espeak build."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from models.speech_corpus.render import change_tempo, degrade
from models.speech_corpus.voices import VoicePlan, VoiceSpec, choose_voice, espeak_pairs, heldout_pair
from tests.conftest import chirp


def test_voice_choice_is_a_pure_function_of_seed_and_index() -> None:
    plan = VoicePlan()
    a = [choose_voice(plan, 3, i, festival=["kal_diphone"]) for i in range(50)]
    b = [choose_voice(plan, 3, i, festival=["kal_diphone"]) for i in range(50)]
    assert a == b
    assert a != [choose_voice(plan, 4, i, festival=["kal_diphone"]) for i in range(50)]
    assert len({v.name for v in a}) > 20  # many voices
    assert any(v.engine == "festival" for v in a) and any(v.snr_db is not None for v in a)


def test_heldout_pairs_never_appear_in_training() -> None:
    train, held = set(espeak_pairs("train")), set(espeak_pairs("heldout"))
    assert train and held and not train & held
    assert all(heldout_pair(*p) for p in held)
    for i in range(300):
        v = choose_voice(VoicePlan(), 1, i, festival=["kal_diphone"])
        if v.engine == "espeak":
            assert (v.voice, v.variant) in train
        t = choose_voice(VoicePlan.clean("heldout"), 1, i, festival=["kal_diphone"])
        assert t.engine == "espeak" and (t.voice, t.variant) in held and t.snr_db is None and t.tempo == 1.0


def test_degrade_is_deterministic_and_never_clips() -> None:
    audio = chirp(1.0)
    spec = VoiceSpec("espeak", "en-us", "m1", tempo=1.1, snr_db=10.0, noise="pink", gain=0.9, lead_ms=200,
                     trail_ms=100)
    x, y = degrade(audio, spec, seed=5), degrade(audio, spec, seed=5)
    np.testing.assert_array_equal(x, y)
    assert not np.array_equal(x, degrade(audio, spec, seed=6))
    assert np.max(np.abs(x)) <= 0.99
    # 1 s played 1.1× faster plus 300 ms of padding
    assert x.size == pytest.approx(16000 / 1.1 + 0.3 * 16000, abs=20)
    assert change_tempo(audio, 1.0) is audio


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_tiny_corpus_build_resumes_and_checks_its_options(tmp_path: Path) -> None:
    from models.speech_corpus.corpus import CorpusOptions, build_corpus, load_corpus

    text = tmp_path / "text.txt"
    text.write_text("a dog runs\n\ntwo men play soccer\na woman sings\n")
    opts = CorpusOptions(text, tmp_path / "corpus", seed=2, copies=2, shard_size=4,
                         plan=VoicePlan(festival_share=0.0), write_wavs=True)
    build_corpus(opts, progress=False)
    utts = load_corpus(tmp_path / "corpus")
    assert [u.index for u in utts] == list(range(6))
    assert [u.text for u in utts[:3]] == ["a dog runs", "two men play soccer", "a woman sings"]
    assert all(u.feats.shape[1] == 80 and u.feats.shape[0] > 50 for u in utts)
    assert (tmp_path / "corpus" / "text.txt").read_text().count("\n") == 6
    wav_list = (tmp_path / "corpus" / "wavs.txt").read_text().split()
    assert len(wav_list) == 6 and all(Path(w).is_file() for w in wav_list)
    shard = tmp_path / "corpus" / "shard_00000.npz"
    before = shard.stat().st_mtime_ns
    build_corpus(opts, progress=False)  # everything cached: nothing re-rendered
    assert shard.stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="other options"):
        build_corpus(CorpusOptions(text, tmp_path / "corpus", seed=3), progress=False)
    # the same seed gives the same audio whatever the sharding and the number of processes
    other = CorpusOptions(text, tmp_path / "other", seed=2, copies=2, shard_size=1, jobs=2,
                          plan=VoicePlan(festival_share=0.0))
    again = load_corpus(build_corpus(other, progress=False))
    assert all(np.array_equal(a.feats, b.feats) and a.voice == b.voice for a, b in zip(utts, again, strict=True))


def test_corpus_cli_reports_a_missing_text_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from models.speech_corpus.__main__ import main

    assert main([str(tmp_path / "missing.txt"), "--out", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
