"""``simulsub transcribe``: output contract and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from tests.conftest import chirp

sf = pytest.importorskip("soundfile")


@pytest.fixture()
def wavs(tmp_path: Path) -> list[Path]:
    """Two files: 16 kHz mono and 44.1 kHz stereo (resampled and mixed down by the CLI)."""
    a, b = tmp_path / "a.wav", tmp_path / "b.flac"
    sf.write(str(a), chirp(1.5, seed=1), 16000)
    stereo = chirp(2.0, seed=2, rate=44100)
    sf.write(str(b), [[s, s] for s in stereo], 44100)
    return [a, b]


def test_transcribe_json_with_wer(tiny_export: tuple[Path, Any], wavs: list[Path], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    model_dir, _ = tiny_export
    ref = tmp_path / "ref.txt"
    ref.write_text("hello there\ngood morning\n")
    assert main(["transcribe", *map(str, wavs), "--model", str(model_dir), "--reference-file", str(ref),
                 "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    result = json.loads(lines[-1])
    assert result["texts"] == lines[:2]
    assert result["rtf"] > 0 and result["WER"] >= 0 and result["mode"] == "offline"


def test_transcribe_streaming_plain_output(tiny_export: tuple[Path, Any], wavs: list[Path],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    model_dir, _ = tiny_export
    assert main(["transcribe", *map(str, wavs), "--model", str(model_dir), "--streaming"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["transcribe", *map(str, wavs), "--model", str(model_dir), "--streaming", "--one-pass", "--greedy",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result["mode"] == "streaming one-pass" and result["decoding"] == "greedy"
    assert "--lm-weight must be ≥ 0" in _error(["transcribe", *map(str, wavs), "--model", str(model_dir),
                                                "--lm-weight", "-1"], capsys)


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("simulsub transcribe: error:")
    return lines[0]


def test_missing_audio_file(tiny_export: tuple[Path, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "does not exist" in _error(["transcribe", str(tmp_path / "nope.wav"), "--model", str(tiny_export[0])],
                                      capsys)


def test_unreadable_audio(tiny_export: tuple[Path, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_text("this is not audio")
    assert "cannot read audio" in _error(["transcribe", str(bad), "--model", str(tiny_export[0])], capsys)


def test_reference_line_count_mismatch(tiny_export: tuple[Path, Any], wavs: list[Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    ref = tmp_path / "ref.txt"
    ref.write_text("only one line\n")
    msg = _error(["transcribe", *map(str, wavs), "--model", str(tiny_export[0]), "--reference-file", str(ref)], capsys)
    assert "1 lines but 2 audio files" in msg


def test_missing_model_directory(wavs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "cannot load ASR model" in _error(["transcribe", str(wavs[0]), "--model", str(tmp_path / "none")], capsys)


def test_streaming_half_missing_is_one_line(tiny_export: tuple[Path, Any], wavs: list[Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_export[0], model_dir)
    for f in model_dir.glob("*stream*decoder*.onnx"):
        f.unlink()
    code = main(["transcribe", str(wavs[0]), "--model", str(model_dir), "--streaming"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "missing" in err or "streaming" in err
