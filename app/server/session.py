"""One client stream on the server: audio (PCM → 16 kHz → the speech pipeline) or text (words → a policy).

Methods run in a worker thread (model compute off the event loop) and return the messages to send. Every
final is also persisted as it happens (``<id>.jsonl`` + ``<id>.srt`` in the session directory), so nothing is
lost when a client disconnects abruptly: the server then calls :meth:`stop`, which flushes the open segment.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from app.policies import build_policy
from app.server.protocol import StartRequest
from app.speech_session import SpeechModels
from streaming.caption import CaptionState
from streaming.speech_pipeline import CaptionEvent, SpeechPipeline
from streaming.subtitles import segment_cues, srt_block
from streaming.types import SourceState

SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")


class SessionFiles:
    """Append-only JSONL of finals and SRT of their cues for one session."""

    def __init__(self, directory: Path | None, session_id: str) -> None:
        self.jsonl = self.srt = None
        self.cues = 0
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self.jsonl = (directory / f"{session_id}.jsonl").open("a", encoding="utf-8")
            self.srt = (directory / f"{session_id}.srt").open("a", encoding="utf-8")

    def final(self, msg: dict[str, Any]) -> None:
        if self.jsonl is None or self.srt is None:
            return
        self.jsonl.write(json.dumps(msg, ensure_ascii=False) + "\n")
        self.jsonl.flush()
        for cue in segment_cues(str(msg["target"]), float(msg["start_ms"]), float(msg["end_ms"])):
            self.cues += 1
            self.srt.write(srt_block(self.cues, cue))
        self.srt.flush()

    def close(self) -> None:
        for f in (self.jsonl, self.srt):
            if f is not None:
                f.close()


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
        self.max_segment_words = max_segment_words
        self.max_segment_chars = max_segment_chars
        self.started = time.monotonic()
        self.finals = 0
        self.compute_ms = 0.0
        self.latencies: list[float] = []
        self.stopped = False
        if request.input == "audio":
            self.pipeline: SpeechPipeline | None = models.pipeline(self.policy_cfg)
            self._resampler = None
            if request.sample_rate != 16000:
                import soxr

                self._resampler = soxr.ResampleStream(request.sample_rate, 16000, 1, dtype="float32")
            self._odd = b""
        else:
            self.pipeline = None
            self.policy = build_policy(self.policy_cfg, models.translators)
            self._words: list[str] = []
            self._segment = 0
            self._caption = CaptionState(mask_k=self.policy_cfg.mask_k)
            self._segment_start = 0.0
            self._revision = 0

    @property
    def audio_s(self) -> float:
        return self.pipeline.audio_ms / 1000.0 if self.pipeline is not None else 0.0

    # -- input ----------------------------------------------------------------------------------------
    def audio(self, data: bytes) -> list[dict[str, Any]]:
        """16-bit little-endian mono PCM at the session's sample rate (any frame size, odd bytes carried)."""
        if self.pipeline is None:
            raise ValueError("this session streams text: send {\"type\": \"text\", \"text\": ...} messages")
        data = self._odd + data
        usable = len(data) - len(data) % 2
        self._odd = data[usable:]
        samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        return self._events(self.pipeline.feed(samples))

    def text(self, words: str | tuple[str, ...] | list[str]) -> list[dict[str, Any]]:
        """Words of a transcript feed (a string is split on whitespace); a word ending a sentence (. ! ?)
        finalises the segment, and so does the ``max_segment_words``-th word of a segment without one; a word
        that would take the segment past ``max_segment_chars`` characters starts the next one (a re-translation
        policy's cost grows with the segment, and the model takes at most 256 subwords, about 1 per character
        in the worst case: an endless sentence must neither hold a model thread nor overflow the model).
        Words that arrive together are read together: the policy updates once per call and segment end, not
        once per word (a pasted paragraph costs a few translations, not one per word)."""
        if self.pipeline is not None:
            raise ValueError("this session streams audio: text messages need \"input\": \"text\" in start")
        out: list[dict[str, Any]] = []
        unread = False  # words appended since the policy's last update
        for word in words.split() if isinstance(words, str) else words:
            if self._words and self._chars + 1 + len(word) > self.max_segment_chars:
                out.extend(self._text_update(finished=True))
                out.extend(self._text_final())
            if not self._words:
                self._segment_start = self._now_ms()
            self._words.append(word)
            unread = True
            if SENTENCE_END.search(word) or len(self._words) >= self.max_segment_words:
                out.extend(self._text_update(finished=True))
                out.extend(self._text_final())
                unread = False
        if unread:
            out.extend(self._text_update(finished=False))
        return out

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
            out = self._text_final() if self._words else []
        self.files.close()
        out.append(self.summary())
        return out

    def summary(self) -> dict[str, Any]:
        wall = time.monotonic() - self.started
        if self.pipeline is not None:
            self.compute_ms = sum(seg.record.compute_ms or 0.0 for seg in self.pipeline.segments)
        return {"type": "summary", "session": self.id, "segments": self.finals, "audio_s": round(self.audio_s, 3),
                "wall_s": round(wall, 3), "compute_ms": round(self.compute_ms, 1),
                "rtf": round(self.compute_ms / 1000.0 / self.audio_s, 4) if self.audio_s else None,
                "mean_latency_ms": round(float(np.mean(self.latencies)), 1) if self.latencies else None,
                "policy": self.policy_cfg.name}

    # -- internals --------------------------------------------------------------------------------------
    @property
    def _chars(self) -> int:
        """Characters of the open text segment (its words joined by spaces)."""
        return sum(map(len, self._words)) + max(0, len(self._words) - 1)

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

    def _text_update(self, *, finished: bool) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        target = self.policy.update(SourceState(tuple(self._words), float(len(self._words)), finished=finished))
        compute = (time.perf_counter() - t0) * 1000.0
        self.compute_ms += compute
        rev = self._caption.show(target, amount=float(len(self._words)), elapsed=compute)
        if rev is None or rev.final:
            return []
        return [self._text_msg("partial", rev.words, rev.stable, compute)]

    def _text_final(self) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        target = self.policy.finish()
        compute = (time.perf_counter() - t0) * 1000.0
        self.compute_ms += compute
        self._caption.show(target, amount=float(len(self._words)), elapsed=compute)
        words = target.tokens
        msg = self._text_msg("final", words, len(words), compute)
        self._record(msg)
        self.policy.reset()
        self._caption = CaptionState(mask_k=self.policy_cfg.mask_k)
        self._words = []
        self._segment += 1
        self._revision = 0
        return [msg]

    def _text_msg(self, kind: str, words: tuple[str, ...], stable: int, compute_ms: float) -> dict[str, Any]:
        self._revision += 1
        msg = {"type": kind, "segment": self._segment, "revision": self._revision, "stable": stable,
               "source": " ".join(self._words), "target": " ".join(words),
               "start_ms": round(self._segment_start, 1), "end_ms": round(self._now_ms(), 1),
               "latency_ms": round(compute_ms, 1)}
        if kind == "partial":
            self.latencies.append(compute_ms)
        return msg
