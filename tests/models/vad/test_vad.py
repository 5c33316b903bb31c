"""VAD: hand-worked segmentation of probability sequences; silero-vad on real speech and on silence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streaming.vad import SpeechSegment, VadOptions, VadSegmenter

SPEECH = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "speech"


def scripted(probs: list[float]):
    it = iter(probs)
    return lambda frame: next(it)


def test_hysteresis_min_silence_min_speech_and_padding():
    probs = [0.1, 0.9, 0.9, 0.4, 0.9, 0.2, 0.1, 0.1, 0.1, 0.1, 0.9, 0.1]
    opts = VadOptions(min_silence_ms=300, min_speech_ms=250, pad_ms=100)
    seg = VadSegmenter(scripted(probs), 1600, options=opts)
    out = seg.feed(np.zeros(1600 * 8, dtype=np.float32))  # 100 ms frames
    # speech from 100 ms; 0.4 (between 0.35 and 0.5) keeps it; silence from 500 ms lasts 300 ms at 800 ms
    assert out == [SpeechSegment(0.0, 600.0)]
    assert seg.feed(np.zeros(1600 * 4 + 800, dtype=np.float32)) == []  # speech again at 1000 ms
    assert seg.in_speech
    assert seg.finish() == []  # 1000..1200 ms is shorter than min_speech_ms: dropped
    assert len(seg.probabilities) == 12


def test_open_segment_closed_at_end_of_stream():
    seg = VadSegmenter(scripted([0.9] * 5), 1600, options=VadOptions(pad_ms=50))
    assert seg.feed(np.zeros(1600 * 5 + 100, dtype=np.float32)) == []
    assert seg.finish() == [SpeechSegment(0.0, 500.0)]


def test_options_validated():
    with pytest.raises(ValueError):
        VadOptions(threshold=0.1)


def test_silero_finds_speech_in_a_real_clip_and_none_in_silence():
    from models.asr.audio import load_audio
    from models.vad.silero import SileroVad

    vad = SileroVad()
    audio = load_audio(SPEECH / "jfk" / "jfk.flac", target_rate=16000)
    seg = VadSegmenter(vad.prob, vad.frame_samples)
    segments = seg.feed(audio) + seg.finish()
    assert segments, "no speech found in the JFK clip"
    speech_ms = sum(s.end_ms - s.start_ms for s in segments)
    assert speech_ms > 0.6 * audio.size / 16
    vad.reset()
    quiet = np.random.default_rng(0).normal(0, 0.002, 16000 * 3).astype(np.float32)
    seg2 = VadSegmenter(vad.prob, vad.frame_samples)
    assert seg2.feed(quiet) + seg2.finish() == []
    assert max(seg2.probabilities) < 0.5


def test_probability_history_is_bounded():
    from streaming.vad import PROBABILITY_HISTORY

    seg = VadSegmenter(scripted([0.1] * (PROBABILITY_HISTORY + 50)), 160)
    seg.feed(np.zeros(160 * (PROBABILITY_HISTORY + 50), dtype=np.float32))
    assert len(seg.probabilities) == PROBABILITY_HISTORY  # hours of audio keep the same few KB
