"""LocalAgreement-2 over a scripted Whisper stand-in, and the spoken form of Whisper's text."""

from __future__ import annotations

import numpy as np

from models.asr.wparaformer.whisper_ar import LocalAgreementOptions, LocalAgreementRecognizer, spoken_form


class ScriptedWhisper:
    """Returns the next scripted hypothesis; records the forced prefixes it was given."""

    sample_rate = 16000
    decoding_summary = "scripted"

    def __init__(self, hyps: list[str]) -> None:
        self.hyps = list(hyps)
        self.prefixes: list[str] = []

    def transcribe_written(self, audio: np.ndarray, *, prefix: str = "") -> str:
        self.prefixes.append(prefix)
        return self.hyps.pop(0)


def test_spoken_form() -> None:
    assert spoken_form("And so, my fellow Americans: ask not!") == "and so my fellow americans ask not"
    assert spoken_form("It's a well-known 'fact'.") == "it's a well known fact"


def test_commits_the_agreed_prefix_of_two_hypotheses() -> None:
    w = ScriptedWhisper(["And so", "And so my fellow", "And so my fellow Americans, ask",
                         "And so my fellow Americans asked not", "And so my fellow Americans ask not."])
    rec = LocalAgreementRecognizer(w, LocalAgreementOptions(chunk_ms=1000))  # type: ignore[arg-type]
    second = np.zeros(16000, np.float32)
    texts, committed = [], []
    for _ in range(4):
        ups = rec.feed(second)
        texts.extend(u.text for u in ups)
        committed.append(rec.committed)
    assert committed == ["", "and so", "and so my fellow", "and so my fellow americans"]
    final = rec.finish()
    # the committed words are forced as the decoder prefix of the next call; the final is a pass without one
    assert w.prefixes == ["", "", "And so", "And so my fellow", ""]
    assert final.final and final.text == "and so my fellow americans ask not"
    assert final.audio_ms == 4000.0
    assert rec.committed == "" and texts[0] == "and so"


def test_decodes_only_once_per_chunk() -> None:
    w = ScriptedWhisper(["a", "a b", "a b c"])
    rec = LocalAgreementRecognizer(w, LocalAgreementOptions(chunk_ms=500))  # type: ignore[arg-type]
    for _ in range(10):
        rec.feed(np.zeros(1600, np.float32))  # 100 ms pieces: one decode per 500 ms
    assert len(w.prefixes) == 2


def test_a_hypothesis_that_starts_the_segment_over_is_cut() -> None:
    from models.asr.wparaformer.whisper_ar import _cut_restart

    words = ["the", "hospital", "has", "followed", "protocol", "the", "hospital", "has", "followed"]
    assert _cut_restart(words, 2) == ["the", "hospital", "has", "followed", "protocol"]
    assert _cut_restart(["a", "b", "c", "d", "e", "f"], 0) == ["a", "b", "c", "d", "e", "f"]
