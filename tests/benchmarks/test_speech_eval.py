"""Policies compared on one ASR run: recorded hypotheses replay exactly; the evaluation scores every policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("onnxruntime")
pytest.importorskip("silero_vad", reason="silero-vad is installed by make setup")

from app.policies import PolicyConfig
from app.speech_session import SpeechConfig, SpeechModels
from benchmarks.speech_eval import SpeechSet, evaluate, run_file
from streaming.asr_replay import AsrRecording, RecordingRecognizer, ReplayMismatchError, ReplayRecognizer

JFK = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "speech" / "jfk" / "jfk.16k.wav"


@pytest.fixture(scope="module")
def models(tiny_export: tuple[Path, Any]) -> SpeechModels:
    return SpeechModels(SpeechConfig(policy=PolicyConfig(name="reta", beam=1), asr_model=tiny_export[0]))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    speech, sr = sf.read(JFK, dtype="float32")
    tmp = tmp_path_factory.mktemp("speech-eval")
    out = []
    for i, (a, b) in enumerate(((0.0, 4.0), (4.0, 11.0))):
        path = tmp / f"clip{i}.wav"
        sf.write(path, np.concatenate([speech[int(a * sr) : int(b * sr)], np.zeros(sr // 2, np.float32)]), sr)
        out.append(path)
    return out


def test_replayed_asr_gives_the_same_captions(models: SpeechModels, files: list[Path]) -> None:
    cfg = PolicyConfig(name="reta", beam=1)
    recording = AsrRecording()
    first, _ = run_file(models.pipeline(cfg, recognizer=RecordingRecognizer(models.recognizer(), recording)),
                        files[1])
    replay = ReplayRecognizer(recording)
    again, _ = run_file(models.pipeline(cfg, recognizer=replay), files[1])
    assert replay.exhausted and len(first) == len(again) >= 1
    for a, b in zip(first, again, strict=True):
        assert (a.source, a.record.prediction, a.record.delays) == (b.source, b.record.prediction, b.record.delays)
    with pytest.raises(ReplayMismatchError):
        run_file(models.pipeline(cfg, recognizer=ReplayRecognizer(recording)), files[0])  # other audio


def test_evaluate_scores_each_policy_on_the_same_transcripts(models: SpeechModels, files: list[Path]) -> None:
    data = SpeechSet("jfk", files, ["Und so, meine Mitbürger.", "Fragt nicht, was euer Land für euch tun kann."],
                     ["and so my fellow americans", "ask not what your country can do for you"])
    systems = [("reta", PolicyConfig(name="reta", beam=1)), ("waitk", PolicyConfig(name="waitk", k=3))]
    result = evaluate(models, systems, data, progress=False)
    assert set(result) == {"reta", "waitk"}
    assert result["reta"]["WER"] == result["waitk"]["WER"]  # one ASR run, replayed
    for s in result.values():
        assert s["files"] == 2 and 0 <= s["BLEU"] <= 100 and s["rtf"] > 0 and s["audio_s"] > 11
    assert result["waitk"]["NE"] == 0.0  # wait-k never erases
