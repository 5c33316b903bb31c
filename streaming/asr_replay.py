"""Record a streaming recognizer's hypotheses once and replay them, to compare policies on the same ASR output.

The speech cascade is deterministic for given audio: VAD, chunking and the recognizer see the same samples in
the same calls every time. Benchmarks that run several policies over the same recordings therefore run the ASR
once (:class:`RecordingRecognizer`) and hand each other policy the recorded hypotheses
(:class:`ReplayRecognizer`), with the ASR compute time measured on the first run: computation-aware latency
stays exact, and the ASR's cost is not paid once per policy. A replay that is fed differently (other audio,
other sizes) raises instead of returning hypotheses that belong to other audio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from streaming.errors import ModelRunError
from streaming.speech_pipeline import Recognizer
from streaming.speech_stream import AsrHypothesis


class ReplayMismatchError(ModelRunError):
    """The replayed stream is fed differently from the recorded one."""


@dataclass
class AsrRecording:
    """Per call: ("feed", samples, hypotheses) or ("finish", 0, [hypothesis]); "reset" marks a new segment."""

    calls: list[tuple[str, int, list[AsrHypothesis]]] = field(default_factory=list)


class RecordingRecognizer:
    """Passes every call to ``inner`` and records it."""

    def __init__(self, inner: Recognizer, recording: AsrRecording | None = None) -> None:
        self.inner = inner
        self.recording = recording if recording is not None else AsrRecording()

    def reset(self) -> None:
        self.inner.reset()
        self.recording.calls.append(("reset", 0, []))

    def feed(self, audio: np.ndarray) -> Sequence[AsrHypothesis]:
        hyps = list(self.inner.feed(audio))
        self.recording.calls.append(("feed", int(np.asarray(audio).size), hyps))
        return hyps

    def finish(self) -> AsrHypothesis:
        hyp = self.inner.finish()
        self.recording.calls.append(("finish", 0, [hyp]))
        return hyp


class ReplayRecognizer:
    """Returns a recording's hypotheses call by call."""

    def __init__(self, recording: AsrRecording) -> None:
        self.recording = recording
        self._next = 0

    def _take(self, kind: str, samples: int) -> list[AsrHypothesis]:
        if self._next >= len(self.recording.calls):
            raise ReplayMismatchError(f"the recording has no call left for {kind}")
        got_kind, got_samples, hyps = self.recording.calls[self._next]
        if got_kind != kind or got_samples != samples:
            raise ReplayMismatchError(f"call {self._next}: recorded {got_kind}({got_samples}), "
                                      f"replayed {kind}({samples})")
        self._next += 1
        return hyps

    def reset(self) -> None:
        self._take("reset", 0)

    def feed(self, audio: np.ndarray) -> Sequence[AsrHypothesis]:
        return self._take("feed", int(np.asarray(audio).size))

    def finish(self) -> AsrHypothesis:
        return self._take("finish", 0)[0]

    @property
    def exhausted(self) -> bool:
        return self._next == len(self.recording.calls)
