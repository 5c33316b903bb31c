"""VAD → ASR → policy over a whole stream: segments, pre-roll, dropped clicks, cuts, block-size invariance."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

from streaming.policies.reta import RetaPolicy
from streaming.speech_pipeline import PipelineOptions, SpeechPipeline
from streaming.vad import VadOptions
from tests.streaming.fakes import LexiconTranslator
from tests.streaming.test_reta import ticking_timer

SR = 16000
FRAME = 512
WORDS = ["a", "man", "walks", "the", "woman", "runs"]


def energy(frame: np.ndarray) -> float:
    """A stand-in VAD: loud frames are speech."""
    return 0.9 if float(np.sqrt(np.mean(frame**2))) > 0.05 else 0.05


@dataclass(frozen=True)
class Hyp:
    text: str
    final: bool
    audio_ms: float
    compute_ms: float = 5.0

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.text.split())


class LoudnessAsr:
    """A stand-in ASR: one word per 300 ms of loud audio heard, a partial every 600 ms of audio."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.samples = 0
        self.loud = 0
        self.next_partial = int(0.6 * SR)
        self.first_sample_loud: bool | None = None

    def _text(self) -> str:
        return " ".join(WORDS[i % len(WORDS)] for i in range(self.loud // int(0.3 * SR)))

    def feed(self, audio: np.ndarray) -> list[Hyp]:
        if self.first_sample_loud is None and audio.size:
            self.first_sample_loud = abs(float(audio[0])) > 0.05
        self.samples += audio.size
        self.loud += int((np.abs(audio) > 0.05).sum())
        out = []
        while self.samples >= self.next_partial:
            self.next_partial += int(0.6 * SR)
            out.append(Hyp(self._text(), False, 1000.0 * self.samples / SR))
        return out

    def finish(self) -> Hyp:
        return Hyp(self._text(), True, 1000.0 * self.samples / SR)


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return np.where(np.sin(2 * np.pi * 220 * t) >= 0, 0.3, -0.3).astype(np.float32)  # square wave: every sample loud


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), dtype=np.float32)


def make(options: PipelineOptions | None = None) -> tuple[SpeechPipeline, LoudnessAsr]:
    asr = LoudnessAsr()
    opts = options or PipelineOptions(vad=VadOptions(min_silence_ms=400, min_speech_ms=250, pad_ms=0))
    return SpeechPipeline(energy, FRAME, asr, RetaPolicy(LexiconTranslator()), opts, timer=ticking_timer(1.0)), asr


def run(pipe: SpeechPipeline, audio: np.ndarray, block: int) -> list[dict[str, object]]:
    events = []
    for i in range(0, audio.size, block):
        events += pipe.feed(audio[i : i + block])
    events += pipe.finish()
    return [e.to_json() for e in events]


def test_silence_gives_no_captions() -> None:
    pipe, _ = make()
    assert run(pipe, silence(5.0), 4000) == [] and pipe.segments == []


def test_two_utterances_two_segments_with_pre_roll() -> None:
    pipe, _ = make()
    audio = np.concatenate([silence(1.0), tone(1.8), silence(1.5), tone(1.2), silence(1.0)])
    events = run(pipe, audio, 1600)
    finals = [e for e in events if e["type"] == "final"]
    assert [e["segment"] for e in finals] == [0, 1]
    assert len(pipe.segments) == 2
    first, second = pipe.segments
    # the ASR starts 300 ms (pre-roll) before the detected onset at 1.0 s (frame granularity: 32 ms)
    assert first.start_ms == pytest.approx(700.0, abs=40.0)
    assert second.start_ms == pytest.approx(4300.0 - 300.0, abs=40.0)
    assert first.source == "a man walks the woman runs" and first.record.prediction == "eine Mann geht der Frau rennt ."
    assert second.source == "a man walks the"
    assert any(e["type"] == "partial" for e in events)
    for e in events:  # every event lies inside its segment and carries the segment's start
        seg = pipe.segments[int(e["segment"])]  # type: ignore[call-overload]
        assert e["start_ms"] == pytest.approx(seg.start_ms, abs=0.1)
        assert seg.start_ms <= e["end_ms"] <= seg.end_ms + 0.1  # type: ignore[operator]
        assert e["latency_ms"] >= 0  # type: ignore[operator]
    assert first.record.delays == sorted(first.record.delays)


def test_a_click_is_not_captioned() -> None:
    pipe, _ = make()
    audio = np.concatenate([silence(1.0), tone(0.1), silence(2.0)])
    assert run(pipe, audio, 3200) == [] and pipe.segments == []


def test_long_speech_is_cut_and_nothing_is_lost() -> None:
    opts = PipelineOptions(vad=VadOptions(min_silence_ms=400, min_speech_ms=250, pad_ms=0), max_segment_ms=3000)
    pipe, _ = make(opts)
    run(pipe, np.concatenate([silence(0.5), tone(7.5), silence(1.0)]), 1600)
    assert len(pipe.segments) == 3
    spans = [(s.start_ms, s.end_ms) for s in pipe.segments]
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start == pytest.approx(end, abs=1.0)  # back to back: no audio dropped between cuts
    heard = sum(len(s.source.split()) for s in pipe.segments)
    assert heard == pytest.approx(7.5 / 0.3, abs=3)


def test_block_size_does_not_change_the_result() -> None:
    audio = np.concatenate([silence(0.7), tone(1.5), silence(1.0), tone(0.9), silence(0.6)])
    results = []
    for block in (160, 1600, 7777, audio.size):
        pipe, _ = make()
        results.append(run(pipe, audio, block))
    assert results[0] == results[1] == results[2] == results[3]
    assert results[0]
