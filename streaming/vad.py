"""Voice activity segmentation (I/O-free): frame speech probabilities in, utterance boundaries out.

Hysteresis as in silero-vad's own iterator: speech starts when a frame's probability reaches
``threshold``; it ends once probabilities stay below ``threshold − 0.15`` for ``min_silence_ms``.
Segments shorter than ``min_speech_ms`` are dropped (so a click or a cough yields no subtitle). Times are
ms of 16 kHz audio since stream start; a segment is padded by ``pad_ms`` on both sides.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from streaming.types import SAMPLE_RATE

PROBABILITY_HISTORY = 1000  # frames of probability kept (32 s of 32 ms frames)


@dataclass(frozen=True)
class VadOptions:
    threshold: float = 0.5
    min_silence_ms: float = 500.0
    min_speech_ms: float = 250.0
    pad_ms: float = 100.0

    def __post_init__(self) -> None:
        if not 0.15 < self.threshold < 1.0:
            raise ValueError("threshold must be in (0.15, 1)")
        if min(self.min_silence_ms, self.min_speech_ms, self.pad_ms) < 0:
            raise ValueError("durations must be >= 0")


@dataclass(frozen=True)
class SpeechSegment:
    """One utterance: ``start_ms`` .. ``end_ms`` (padded, clipped to the stream)."""

    start_ms: float
    end_ms: float


class VadSegmenter:
    """Feed audio of any length; get the segments that ended. ``classify`` maps one frame to a probability."""

    def __init__(self, classify: Callable[[np.ndarray], float], frame_samples: int, *, sample_rate: int = SAMPLE_RATE,
                 options: VadOptions = VadOptions()) -> None:
        self.classify = classify
        self.frame_samples = frame_samples
        self.frame_ms = frame_samples * 1000.0 / sample_rate
        self.options = options
        self._buffer = np.zeros(0, dtype=np.float32)
        self._t_ms = 0.0  # end of the last classified frame
        self._start: float | None = None  # first speech frame of the current segment
        self._silence_since: float | None = None
        # the most recent frames' probabilities (for displays and tests), bounded so that a stream of hours keeps
        # flat memory (keeping every 32 ms frame grew by ≈ 3.5 MB per audio hour)
        self.probabilities: deque[float] = deque(maxlen=PROBABILITY_HISTORY)

    @property
    def in_speech(self) -> bool:
        """Inside a segment (speech, or a pause shorter than ``min_silence_ms``)."""
        return self._start is not None

    @property
    def speech_start_ms(self) -> float | None:
        """Onset of the open segment (ms since stream start), None outside speech."""
        return self._start

    @property
    def hearing_speech(self) -> bool:
        """Inside a segment and not in a pause."""
        return self._start is not None and self._silence_since is None

    def restart_segment(self) -> None:
        """The open segment was cut by the caller (too long): count the next one from the current frame."""
        if self._start is not None:
            self._start, self._silence_since = self._t_ms, None

    def feed(self, audio: np.ndarray) -> list[SpeechSegment]:
        """Classify whole frames of ``audio`` (float32, 16 kHz); returns segments that ended in it."""
        self._buffer = np.concatenate([self._buffer, audio.astype(np.float32)])
        out: list[SpeechSegment] = []
        n = self.frame_samples
        while self._buffer.size >= n:
            frame, self._buffer = self._buffer[:n], self._buffer[n:]
            seg = self._step(self.classify(frame))
            if seg is not None:
                out.append(seg)
        return out

    def finish(self) -> list[SpeechSegment]:
        """End of stream: close an open segment (the partial last frame is not classified)."""
        if self._start is None:
            return []
        seg = self._close(self._t_ms)
        return [seg] if seg is not None else []

    def _step(self, p: float) -> SpeechSegment | None:
        self.probabilities.append(p)
        start, self._t_ms = self._t_ms, self._t_ms + self.frame_ms
        opts = self.options
        if self._start is None:
            if p >= opts.threshold:
                self._start, self._silence_since = start, None
            return None
        if p >= opts.threshold:
            self._silence_since = None
        elif p < opts.threshold - 0.15:
            if self._silence_since is None:
                self._silence_since = start
            if self._t_ms - self._silence_since >= opts.min_silence_ms:
                return self._close(self._silence_since)
        return None

    def _close(self, end_ms: float) -> SpeechSegment | None:
        start, self._start, self._silence_since = self._start, None, None
        assert start is not None
        if end_ms - start < self.options.min_speech_ms:
            return None
        return SpeechSegment(max(0.0, start - self.options.pad_ms), min(self._t_ms, end_ms + self.options.pad_ms))
