"""Audio sources: streamed file decoding equals whole-file decoding; PCM bytes; pacing; clear errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from app.audio_sources import AudioChunk, file_source, paced, pcm_source
from app.errors import UserError

JFK = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "speech" / "jfk" / "jfk.flac"


def collect(chunks: list[AudioChunk]) -> np.ndarray:
    t = 0.0
    for c in chunks:
        assert c.t_ms == pytest.approx(t)
        t += c.duration_ms
    return np.concatenate([c.samples for c in chunks])


def test_file_streaming_matches_whole_file_decoding_at_16k():
    from models.asr.audio import load_audio

    chunks = list(file_source(JFK, chunk_ms=100))
    assert all(c.samples.size == 1600 for c in chunks[:-1])
    streamed = collect(chunks)
    whole = load_audio(JFK, target_rate=16000)
    assert abs(streamed.size - whole.size) <= 16
    n = min(streamed.size, whole.size)
    assert np.corrcoef(streamed[:n], whole[:n])[0, 1] > 0.999


def test_stereo_44k_file_is_downmixed_and_resampled(tmp_path: Path):
    t = np.arange(44100 * 2) / 44100
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "tone.wav"
    sf.write(path, np.stack([left, left], axis=1), 44100, subtype="PCM_16")
    audio = collect(list(file_source(path, chunk_ms=250)))
    assert abs(audio.size - 32000) <= 16
    spectrum = np.abs(np.fft.rfft(audio[4000:20000]))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)  # 16000 samples at 16 kHz: 1 Hz per bin


def test_pcm_stream_with_odd_byte_reads():
    samples = (np.sin(np.arange(8000) / 10) * 20000).astype("<i2")

    class Dribble(io.BytesIO):
        def read(self, n: int = -1) -> bytes:  # hand out odd-sized pieces, like a pipe
            return super().read(min(n, 333) if n > 0 else n)

    audio = collect(list(pcm_source(Dribble(samples.tobytes()), sample_rate=16000, chunk_ms=100)))
    np.testing.assert_allclose(audio, samples.astype(np.float32) / 32768.0)


def test_paced_releases_chunks_at_their_end_time():
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    chunks = [AudioChunk(np.zeros(1600, np.float32), 100.0 * i) for i in range(3)]
    assert len(list(paced(chunks, clock=lambda: now[0], sleep=sleep))) == 3
    assert slept == pytest.approx([0.1, 0.1, 0.1])


def test_bad_files(tmp_path: Path):
    with pytest.raises(UserError, match="does not exist"):
        list(file_source(tmp_path / "none.wav"))
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    with pytest.raises(UserError, match="cannot read audio file"):
        list(file_source(junk))
