"""``simulsub replay`` on awkward and broken audio: every sample rate / channel count / sample width is decoded
to the same 16 kHz mono speech; corrupt, empty, unsupported and truncated files get one clear line and exit 2
(a truncated file whose header survives replays the audio that is there); a long file streams in constant memory.
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from app.cli import main

pytest.importorskip("onnxruntime")
pytest.importorskip("silero_vad", reason="silero-vad is installed by make setup")
JFK = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "speech" / "jfk" / "jfk.16k.wav"


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    audio, sr = sf.read(JFK, dtype="float32")
    assert sr == 16000
    return audio[: 5 * sr]


def replay_json(path: Path, asr_dir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], str]:
    code = main(["replay", str(path), "--asr-model", str(asr_dir), "--json"])
    out, err = capsys.readouterr()
    data = json.loads(out.strip().splitlines()[-1]) if code == 0 else {}
    return code, data, err


def resample(x: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    return np.asarray(soxr.resample(x, 16000, rate), dtype=np.float32)


@pytest.mark.parametrize(("name", "rate", "channels", "subtype"), [
    ("8k.wav", 8000, 1, "PCM_16"),
    ("44k1.wav", 44100, 1, "PCM_16"),
    ("stereo48k.flac", 48000, 2, "PCM_24"),
    ("8bit.wav", 16000, 1, "PCM_U8"),
    ("float32-22k.wav", 22050, 2, "FLOAT"),
])
def test_any_rate_channels_and_width_is_replayed(name: str, rate: int, channels: int, subtype: str,
                                                 speech: np.ndarray, tiny_export: tuple[Path, Any], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    asr_dir, _ = tiny_export
    x = resample(speech, rate) if rate != 16000 else speech
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    path = tmp_path / name
    sf.write(path, data, rate, subtype=subtype)
    code, result, err = replay_json(path, asr_dir, capsys)
    assert code == 0, err
    assert result["files"] == 1
    # the whole 5 s were heard at the right speed (audio duration is what the RTF is measured against)
    assert result["audio_s"] == pytest.approx(5.0, abs=0.05)


def test_broken_files_get_one_clear_line(tiny_export: tuple[Path, Any], speech: np.ndarray, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    asr_dir, _ = tiny_export
    cases = {
        "empty.wav": b"",
        "corrupt.wav": b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" + bytes(range(256)) * 4,
        "random.flac": np.random.default_rng(0).bytes(5000),
        "notes.txt": b"this is not audio\n",
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        code, _, err = replay_json(path, asr_dir, capsys)
        assert code == 2, (name, err)
        assert str(path) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_truncated_file_replays_what_is_there(tiny_export: tuple[Path, Any], speech: np.ndarray, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    asr_dir, _ = tiny_export
    whole = tmp_path / "whole.wav"
    sf.write(whole, speech, 16000, subtype="PCM_16")
    raw = whole.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(raw[: 44 + 2 * 16000 * 2])  # the header still promises 5 s; 2 s are there
    code, result, err = replay_json(cut, asr_dir, capsys)
    assert code == 0, err
    assert result["audio_s"] == pytest.approx(2.0, abs=0.05)


def test_long_file_streams_in_constant_memory(tmp_path: Path) -> None:
    """Decoding + resampling a 20-minute 44.1 kHz stereo file holds only a few blocks at a time (the 2-hour
    run of the whole cascade is in ``benchmarks/long_audio.py``)."""
    from app.audio_sources import file_source

    rate, minutes = 44100, 20
    path = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=rate, channels=2, subtype="PCM_16") as f:
        block = (0.05 * rng.standard_normal((rate * 10, 2))).astype(np.float32)
        for _ in range(minutes * 6):
            f.write(block)
    size_mb = path.stat().st_size / 1e6
    tracemalloc.start()
    total = 0
    for chunk in file_source(path, chunk_ms=100):
        total += chunk.samples.size
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert total == pytest.approx(minutes * 60 * 16000, rel=1e-3)
    assert peak / 1e6 < 20 and peak / 1e6 < size_mb / 10, f"peak {peak / 1e6:.1f} MB for a {size_mb:.0f} MB file"
