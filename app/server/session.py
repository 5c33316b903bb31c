"""One client stream on the server: audio (PCM → 16 kHz → the speech pipeline) or text (words → a policy).

Methods run in a worker thread (model compute off the event loop) and return the messages to send. Every
final is also persisted as it happens (``<id>.jsonl`` + ``<id>.srt`` in the session directory), so nothing is
lost when a client disconnects abruptly: the server then calls :meth:`stop`, which flushes the open segment.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from app.policies import build_policy
from app.server.protocol import StartRequest
from app.sinks import JsonlLog, SrtFile
from app.speech_session import SpeechModels
from streaming.events import CaptionEvent
from streaming.metrics.runtime import mean_latency_ms, real_time_factor, rounded
from streaming.pcm import Pcm16Decoder
from streaming.speech_pipeline import SpeechPipeline
from streaming.text_pipeline import TextPipeline, TextPipelineOptions
from streaming.types import SAMPLE_RATE


class SessionFiles:
    """Append-only JSONL of finals and SRT of their cues for one session (``<id>.jsonl``, ``<id>.srt``), both
    flushed after every final (:mod:`app.sinks` in append mode); nothing is written without a directory."""

    def __init__(self, directory: Path | None, session_id: str) -> None:
        self.jsonl: JsonlLog | None = None
        self.srt: SrtFile | None = None
        if directory is not None:
            self.jsonl = JsonlLog.open(directory / f"{session_id}.jsonl", append=True)
            self.srt = SrtFile.open(directory / f"{session_id}.srt", append=True)

    def final(self, msg: dict[str, Any]) -> None:
        """One ``final`` message: its JSON line, and its cues (stream ms) in the SRT file."""
        if self.jsonl is None or self.srt is None:
            return
        self.jsonl.write(msg)
        self.srt.add(str(msg["target"]), float(msg["start_ms"]), float(msg["end_ms"]))

    def close(self) -> None:
        """Close both files (idempotent)."""
        for f in (self.jsonl, self.srt):
            if f is not None:
                f.commit()


class StreamSession:
    """Server-side state of one stream; not thread-safe (the server runs one call at a time per session)."""

    def __init__(self, session_id: str, request: StartRequest, models: SpeechModels, *,
                 out_dir: Path | None = None, max_audio_s: float = 4 * 3600.0, max_segment_words: int = 60,
                 max_segment_chars: int = 250) -> None:
        self.id = session_id
        self.request = request
        base = models.cfg.policy
        self.policy_cfg = replace(  # what the client leaves out is the server's (incl. prefix bias, languages)
            base, name=request.policy or base.name,
            model=base.model if request.policy in (None, base.name) else None, beam=request.beam or base.beam,
            mask_k=base.mask_k if request.mask_k is None else request.mask_k, k=request.k or base.k,
            latency=request.latency or base.latency,
        )
        self.files = SessionFiles(out_dir, session_id)
        self.max_audio_s = max_audio_s
        self.started = time.monotonic()
        self.finals = 0
        self.compute_ms = 0.0
        self.latencies: list[float] = []
        self.stopped = False
        if request.input == "audio":
            self.pipeline: SpeechPipeline | None = models.pipeline(self.policy_cfg)
            self._resampler = None
            if request.sample_rate != SAMPLE_RATE:
                import soxr

                self._resampler = soxr.ResampleStream(request.sample_rate, SAMPLE_RATE, 1, dtype="float32")
            self._pcm = Pcm16Decoder()
            self.text_pipeline: TextPipeline | None = None
        else:
            self.pipeline = None
            self.text_pipeline = TextPipeline(
                build_policy(self.policy_cfg, models.translators),
                TextPipelineOptions(mask_k=self.policy_cfg.mask_k, max_segment_words=max_segment_words,
                                    max_segment_chars=max_segment_chars),
                clock=self._now_ms)

    @property
    def audio_s(self) -> float:
        return self.pipeline.audio_ms / 1000.0 if self.pipeline is not None else 0.0

    # -- input ----------------------------------------------------------------------------------------
    def audio(self, data: bytes) -> list[dict[str, Any]]:
        """16-bit little-endian mono PCM at the session's sample rate (any frame size, odd bytes carried)."""
        if self.pipeline is None:
            raise ValueError("this session streams text: send {\"type\": \"text\", \"text\": ...} messages")
        samples = self._pcm.decode(data)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        return self._events(self.pipeline.feed(samples))

    def text(self, words: str | tuple[str, ...] | list[str]) -> list[dict[str, Any]]:
        """Words of a transcript feed (a string is split on whitespace), segmented and translated by the
        session's :class:`streaming.text_pipeline.TextPipeline` (sentence ends, ``max_segment_words`` and
        ``max_segment_chars`` close a segment; words that arrive together get one policy update)."""
        if self.text_pipeline is None:
            raise ValueError("this session streams audio: text messages need \"input\": \"text\" in start")
        return self._events(self.text_pipeline.feed(words))

    def over_limit(self) -> bool:
        """Past the session length limit: seconds of audio (audio sessions) or of wall time (text sessions)."""
        if self.pipeline is None:
            return time.monotonic() - self.started > self.max_audio_s
        return self.audio_s > self.max_audio_s

    def stop(self) -> list[dict[str, Any]]:
        """End of stream: remaining finals, then the summary. Idempotent."""
        if self.stopped:
            return []
        self.stopped = True
        if self.pipeline is not None:
            out = []
            if self._resampler is not None:  # the resampler's delay line holds the last few ms of audio
                tail = self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
                out = self._events(self.pipeline.feed(tail))
            out += self._events(self.pipeline.finish())
        else:
            assert self.text_pipeline is not None
            out = self._events(self.text_pipeline.finish())
        self.files.close()
        out.append(self.summary())
        return out

    def summary(self) -> dict[str, Any]:
        wall = time.monotonic() - self.started
        if self.pipeline is not None:
            self.compute_ms = sum(seg.record.compute_ms or 0.0 for seg in self.pipeline.segments)
        elif self.text_pipeline is not None:
            self.compute_ms = self.text_pipeline.compute_ms
        return {"type": "summary", "session": self.id, "segments": self.finals, "audio_s": round(self.audio_s, 3),
                "wall_s": round(wall, 3), "compute_ms": round(self.compute_ms, 1),
                "rtf": rounded(real_time_factor(self.compute_ms / 1000.0, self.audio_s), 4),
                "mean_latency_ms": rounded(mean_latency_ms(self.latencies), 1),
                "policy": self.policy_cfg.name}

    # -- internals --------------------------------------------------------------------------------------
    def _now_ms(self) -> float:
        return (time.monotonic() - self.started) * 1000.0

    def _events(self, events: list[CaptionEvent]) -> list[dict[str, Any]]:
        out = []
        for e in events:
            msg = e.to_json()
            self._record(msg)
            out.append(msg)
        return out

    def _record(self, msg: dict[str, Any]) -> None:
        self.latencies.append(float(msg["latency_ms"]))
        if msg["type"] == "final":
            self.finals += 1
            self.files.final(msg)
