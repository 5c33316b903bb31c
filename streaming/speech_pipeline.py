"""The whole cascade for a stream of 16 kHz audio (I/O-free): VAD → streaming ASR → policy → captions.

Audio of any block size goes in; caption events come out. The VAD (any frame classifier, silero-vad in
practice) finds utterances. The ASR of an utterance starts only once its speech has lasted
``min_speech_ms`` (a click or a cough never reaches the screen), fed from ``pre_roll_ms`` before the detected
onset so the first phoneme is not cut. While speech goes on, the ASR's partial hypotheses drive the policy
through :class:`streaming.speech_stream.SegmentTranslator`; when the VAD closes the utterance (or it reaches
``max_segment_ms`` of continuous speech and is cut), the final hypothesis is translated and the segment's
SimulEval-style record is kept. Silence produces no captions.

Times: every ``*_ms`` of an event is stream time (ms of 16 kHz audio since the stream started). A segment's
record has delays in ms of that segment's audio (from its first sample, the pre-roll included).
``latency_ms`` of an event is its computation-aware lag: the time the caption would appear on a real-time
stream (the audio it reflects + the ASR and policy compute spent on the segment so far) minus the audio it
reflects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from streaming.clock import perf_ms
from streaming.events import CaptionEvent, SegmentResult
from streaming.policy import Policy
from streaming.speech_stream import AsrHypothesis, SegmentTranslator
from streaming.types import SAMPLE_RATE
from streaming.vad import VadOptions, VadSegmenter


class Recognizer(Protocol):
    """A streaming ASR for one segment at a time (``models.asr.streaming.StreamingRecognizer`` fits)."""

    def reset(self) -> None: ...
    def feed(self, audio: np.ndarray) -> Sequence[AsrHypothesis]: ...
    def finish(self) -> AsrHypothesis: ...


@dataclass(frozen=True)
class PipelineOptions:
    """``mask_k``: display mask of non-final captions (words); the rest in ms of audio."""

    vad: VadOptions = field(default_factory=VadOptions)
    pre_roll_ms: float = 300.0
    max_segment_ms: float = 20000.0
    mask_k: int = 0

    def __post_init__(self) -> None:
        if self.pre_roll_ms < 0 or self.max_segment_ms <= 0:
            raise ValueError("pre_roll_ms must be >= 0 and max_segment_ms > 0")


class SpeechPipeline:
    """VAD-segmented streaming translation of one audio stream."""

    def __init__(self, classify: Callable[[np.ndarray], float], frame_samples: int, recognizer: Recognizer,
                 policy: Policy, options: PipelineOptions | None = None, *,
                 reset_vad: Callable[[], None] | None = None, timer: Callable[[], float] = perf_ms) -> None:
        self.options = options or PipelineOptions()
        self.frame_samples = frame_samples
        self._classify = classify
        self._reset_vad = reset_vad
        self.recognizer = recognizer
        self.translator = SegmentTranslator(policy, mask_k=self.options.mask_k, timer=timer)
        self.segments: list[SegmentResult] = []
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        if self._reset_vad is not None:
            self._reset_vad()
        self.vad = VadSegmenter(self._classify, self.frame_samples, options=self.options.vad)
        self.recognizer.reset()
        self.translator.reset()
        self.segments = []
        self._pending = np.zeros(0, dtype=np.float32)  # samples not yet a whole VAD frame
        self._history = np.zeros(0, dtype=np.float32)  # recent audio for the pre-roll (bounded)
        self._t = 0  # samples consumed
        self._active_start: float | None = None  # stream ms where the active segment's audio starts
        self._revision = 0

    @property
    def audio_ms(self) -> float:
        return 1000.0 * self._t / SAMPLE_RATE

    def feed(self, audio: np.ndarray) -> list[CaptionEvent]:
        """Add float32 16 kHz mono audio; returns the caption events it caused."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        self._pending = np.concatenate([self._pending, audio])
        events: list[CaptionEvent] = []
        n = self.frame_samples
        while self._pending.size >= n:
            frame, self._pending = self._pending[:n], self._pending[n:]
            events.extend(self._frame(frame))
        return events

    def finish(self) -> list[CaptionEvent]:
        """End of stream: the open segment (if any) becomes final."""
        events: list[CaptionEvent] = []
        if self._active_start is not None:
            if self._pending.size:
                events.extend(self._asr(self._pending))
                self._t += self._pending.size
            events.extend(self._close())
        self._pending = np.zeros(0, dtype=np.float32)
        return events

    # -- internals ------------------------------------------------------------------------------------
    def _frame(self, frame: np.ndarray) -> list[CaptionEvent]:
        ended = self.vad.feed(frame)
        self._t += frame.size
        events: list[CaptionEvent] = []
        if self._active_start is not None:
            events.extend(self._asr(frame))
            too_long = self.audio_ms - self._active_start >= self.options.max_segment_ms
            if ended or not self.vad.in_speech or too_long:
                events.extend(self._close())
            return events
        self._remember(frame)
        onset = self.vad.speech_start_ms
        if onset is not None and self.vad.hearing_speech and self.audio_ms - onset >= self.options.vad.min_speech_ms:
            first = round(max(0.0, onset - self.options.pre_roll_ms) * SAMPLE_RATE / 1000.0)  # sample index
            keep = min(self._t - first, self._history.size)
            self._active_start = 1000.0 * (self._t - keep) / SAMPLE_RATE
            backlog = self._history[self._history.size - keep :]
            self._history = np.zeros(0, dtype=np.float32)
            events.extend(self._asr(backlog))
        return events

    def _remember(self, frame: np.ndarray) -> None:
        """Keep enough recent audio for the pre-roll plus the minimum speech duration."""
        self._history = np.concatenate([self._history, frame])
        limit = int((self.options.pre_roll_ms + self.options.vad.min_speech_ms) * SAMPLE_RATE / 1000.0)
        limit += 2 * self.frame_samples
        if self._history.size > limit:
            self._history = self._history[-limit:]

    def _asr(self, audio: np.ndarray) -> list[CaptionEvent]:
        events = []
        for hyp in self.recognizer.feed(audio):
            events.extend(self._translate(hyp))
        return events

    def _translate(self, hyp: AsrHypothesis) -> list[CaptionEvent]:
        before = len(self.translator.caption.revisions)
        target = self.translator.feed(hyp)
        if len(self.translator.caption.revisions) == before and not hyp.final:
            return []
        return [self._event("final" if target.final else "partial", hyp.audio_ms)]

    def _event(self, kind: Literal["partial", "final"], seg_audio_ms: float) -> CaptionEvent:
        assert self._active_start is not None
        self._revision += 1
        rev = self.translator.caption.revisions[-1] if self.translator.caption.revisions else None
        words = rev.words if rev is not None else ()
        stable = rev.stable if rev is not None else 0
        lag = self.translator.clock.elapsed(seg_audio_ms) - seg_audio_ms
        return CaptionEvent(type=kind, segment=len(self.segments), revision=self._revision, stable=stable,
                            source=" ".join(self.translator.source_words), target=" ".join(words),
                            start_ms=self._active_start, end_ms=self._active_start + seg_audio_ms, latency_ms=lag)

    def _close(self) -> list[CaptionEvent]:
        assert self._active_start is not None
        final = self.recognizer.finish()
        self.translator.feed(final)
        record = self.translator.finish(index=len(self.segments))
        events = [self._event("final", final.audio_ms)]
        source = " ".join(final.words)
        if record.prediction or source:
            # compacted: a finished segment keeps its erased-word count, not every partial it showed, so a
            # stream of hours keeps a few hundred bytes per segment
            self.segments.append(SegmentResult(len(self.segments), self._active_start,
                                               self._active_start + final.audio_ms, record.compact(), source))
        else:  # the ASR heard no words: nothing was shown, nothing to keep
            events = []
        self.translator.reset()
        self.recognizer.reset()
        self._active_start = None
        self._revision = 0
        if self.vad.in_speech:  # cut by max_segment_ms while speech goes on: the next segment starts now
            self.vad.restart_segment()
        return events
