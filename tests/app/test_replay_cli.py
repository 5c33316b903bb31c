"""``simulsub replay``: real speech through silero VAD, a tiny random Paraformer and the bundled MT model."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from app.cli import main

pytest.importorskip("onnxruntime")
JFK = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "speech" / "jfk" / "jfk.16k.wav"
KEYS = {"n", "BLEU", "WER", "AL", "LAAL", "AL_CA", "LAAL_CA", "NE", "rtf"}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("silero_vad", reason="silero-vad is installed by make setup")
    tmp = tmp_path_factory.mktemp("replay")
    speech, sr = sf.read(JFK, dtype="float32")
    assert sr == 16000
    gap = np.zeros(int(1.5 * sr), dtype=np.float32)
    out = {"jfk": tmp / "jfk.wav", "long": tmp / "long.wav", "silence": tmp / "silence.wav"}
    sf.write(out["jfk"], speech, sr)
    sf.write(out["long"], np.concatenate([speech, gap, speech]), sr)
    sf.write(out["silence"], np.zeros(3 * sr, dtype=np.float32), sr)
    return out


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_replay_scores_logs_and_subtitles(tiny_export: tuple[Path, Any], clips: dict[str, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    asr_dir, _ = tiny_export
    refs = tmp_path / "refs.de"
    refs.write_text("Und so, meine Mitbürger: fragt nicht.\nErster Satz hier. Zweiter Satz dort.\n", encoding="utf-8")
    src = tmp_path / "src.en"
    src.write_text("and so my fellow americans ask not\nand so my fellow americans and so my fellow americans\n",
                   encoding="utf-8")
    log, srt, vtt = tmp_path / "log.jsonl", tmp_path / "out.srt", tmp_path / "out.vtt"
    code, out, err = _run(["replay", str(clips["jfk"]), str(clips["long"]), "--asr-model", str(asr_dir),
                           "--beam", "1", "--reference-file", str(refs), "--transcript-file", str(src),
                           "--log", str(log), "--srt", str(srt), "--vtt", str(vtt), "--json"], capsys)
    assert code == 0, err
    scores = json.loads(out.strip().splitlines()[-1])
    assert scores.keys() >= KEYS
    assert scores["n"] == 3  # one sentence for the first file, two for the long-form one (re-segmented)
    assert scores["rtf"] > 0 and scores["WER"] >= 0
    rows = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()]
    assert [r["sentence"] for r in rows] == [0, 0, 1] and rows[1]["audio"].endswith("long.wav")
    assert len(rows[1]["segments"]) >= 2  # the pause splits the long file into two utterances at least
    for r in rows:
        assert r["delays"] == sorted(r["delays"]) and len(r["delays"]) == len(r["prediction"].split())
        assert {"erased", "compute_ms", "updates"} <= r.keys()
    assert [("audio_ms" in r) for r in rows] == [True, True, False]  # a stream's length rides on its first instance
    assert sum(r["updates"] for r in rows) > 0
    code, out, err = _run(["score", str(log), "--source-type", "speech", "--json"], capsys)
    assert code == 0, err
    rescored = json.loads(out.strip().splitlines()[-1])
    for key in ("NE", "rtf", "LAAL", "BLEU"):  # `score` on the log reproduces what replay printed
        assert rescored[key] == pytest.approx(scores[key], rel=1e-9, abs=1e-12), key
    for name, pattern in (("out-jfk.srt", r"^1\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n"),
                          ("out-long.vtt", r"^WEBVTT\n\n\d\d:\d\d:\d\d\.\d{3} --> ")):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert re.match(pattern, text), text[:80]


def test_silence_gives_nothing_and_bad_input_is_refused(tiny_export: tuple[Path, Any], clips: dict[str, Path],
                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    asr_dir, _ = tiny_export
    srt = tmp_path / "s.srt"
    code, out, err = _run(["replay", str(clips["silence"]), "--asr-model", str(asr_dir), "--srt", str(srt),
                           "--json"], capsys)
    assert code == 0, err
    assert srt.read_text(encoding="utf-8") == ""
    assert json.loads(out.strip().splitlines()[-1])["files"] == 1
    code, _, err = _run(["replay", str(tmp_path / "missing.wav"), "--asr-model", str(asr_dir)], capsys)
    assert code == 2 and "does not exist" in err
    refs = tmp_path / "r.de"
    refs.write_text("a\nb\n", encoding="utf-8")
    code, _, err = _run(["replay", str(clips["jfk"]), "--asr-model", str(asr_dir), "--reference-file", str(refs)],
                        capsys)
    assert code == 2 and "2 lines but 1 audio files" in err
    code, _, err = _run(["replay", str(clips["jfk"]), "--asr-model", str(tmp_path / "nope")], capsys)
    assert code == 2 and "ASR model" in err


def test_mic_reports_a_missing_device_clearly(tiny_export: tuple[Path, Any],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("silero_vad", reason="silero-vad is installed by make setup")
    code, out, _ = _run(["mic", "--list-devices"], capsys)
    assert code == 2 or out.strip()
    assert code in (0, 2)  # 2 only where PortAudio itself is missing, with the install hint
    code, _, err = _run(["mic", "--asr-model", str(tiny_export[0]), "--device", "no-such-device-xyz"], capsys)
    assert code == 2 and "no-such-device-xyz" in err and "Traceback" not in err
