"""Resuming a caption stream on a new connection after the old one was cut (``simulsub client --reconnect N``).

The client keeps the audio it sent since the end of the last final it received. When the connection drops
without the server saying why (no close frame, or the server going away, restarting or overloaded: a
``--procs`` child or a Ray Serve ingress replica that died), it opens a new session, sends that audio again and
goes on with the live audio. The new session's stream times and segment numbers start at 0 again; its messages are
shifted by ``offset_ms`` and ``segment_offset``, so the captions, the SRT file and the summary continue those of
the first session. Nothing the server had finalised is sent twice, and no audio after the last final is lost.

Pure bookkeeping (no I/O): :mod:`app.commands.client` feeds it what it sends and receives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streaming.types import SAMPLE_RATE

RESUMABLE_CLOSE_CODES = frozenset({1001, 1006, 1011, 1012, 1013, 1014})
"""Close codes after which a new session may pick up: going away, cut (no close frame), server error, service
restart, try again later, bad gateway. A close the server chose for this client (a policy violation, an invalid
message, the session limit, an idle timeout) ends the stream."""
MAX_PENDING_MS = 120_000.0  # audio kept for a resume; a final comes at the latest every max-segment (20 s) of speech


def resumable(close_code: int | None, reason_code: str | None = None) -> bool:
    """Whether a connection that ended with ``close_code`` (None: no close frame) and the JSON reason ``code`` may
    be resumed on a new one: not after a session limit (``session_too_long``) or the client's own fault."""
    if reason_code in ("session_too_long", "too_many_errors", "timeout", "bad_start"):
        return False
    return close_code is None or close_code in RESUMABLE_CLOSE_CODES


@dataclass
class StreamResume:
    """Offsets between a session's stream and the client's, and the audio to send again (16 kHz float32)."""

    offset_ms: float = 0.0  # the client's stream time of the current session's 0
    segment_offset: int = 0  # the client's segment number of the current session's segment 0
    finals: int = 0  # finals received in earlier sessions
    resumes: int = 0
    _session_finals: int = 0
    _next_segment: int = 0  # current session: one past the last final's segment
    _pending: list[np.ndarray] = field(default_factory=list)
    _pending_start_ms: float = 0.0  # current session's stream time where the pending audio starts
    _sent_ms: float = 0.0  # audio sent in the current session

    @property
    def finals_since_resume(self) -> int:
        """Finals of the current session (a resumed session that produced some has recovered)."""
        return self._session_finals

    @property
    def pending_ms(self) -> float:
        """Audio sent since the last final (ms), what a resume would send again."""
        return self._sent_ms - self._pending_start_ms

    def sent(self, samples: np.ndarray) -> None:
        """Audio about to be sent in the current session (kept until a final covers it)."""
        if samples.size:
            self._pending.append(np.asarray(samples, dtype=np.float32))
            self._sent_ms += samples.size * 1000.0 / SAMPLE_RATE
            self._trim(self._sent_ms - MAX_PENDING_MS)

    def received(self, msg: dict[str, Any]) -> dict[str, Any]:
        """A server message in the client's stream time (a shifted copy; messages of the first session as they
        are). A final releases the audio it covers."""
        kind = msg.get("type")
        if kind == "final":
            self._session_finals += 1
            if isinstance(msg.get("segment"), int):
                self._next_segment = max(self._next_segment, msg["segment"] + 1)
            if isinstance(msg.get("end_ms"), (int, float)):
                self._trim(float(msg["end_ms"]))
        if not self.resumes:
            return msg
        out = dict(msg)
        if kind in ("partial", "final"):
            for key in ("start_ms", "end_ms"):
                if isinstance(out.get(key), (int, float)):
                    out[key] = round(float(out[key]) + self.offset_ms, 1)
            if isinstance(out.get("segment"), int):
                out["segment"] += self.segment_offset
        elif kind == "summary":
            if isinstance(out.get("segments"), int):
                out["segments"] += self.finals
            if isinstance(out.get("audio_s"), (int, float)):
                out["audio_s"] = round(float(out["audio_s"]) + self.offset_ms / 1000.0, 3)
            out["resumed"] = self.resumes
        return out

    def resume(self) -> np.ndarray:
        """Start the bookkeeping of a new session; returns the audio to send first (then pass it to
        :meth:`sent` like any other)."""
        replay = np.concatenate(self._pending) if self._pending else np.zeros(0, dtype=np.float32)
        self.offset_ms += self._pending_start_ms
        self.segment_offset += self._next_segment
        self.finals += self._session_finals
        self.resumes += 1
        self._session_finals = self._next_segment = 0
        self._pending, self._pending_start_ms, self._sent_ms = [], 0.0, 0.0
        return replay

    def _trim(self, until_ms: float) -> None:
        """Drop the pending audio before ``until_ms`` (current session's stream time)."""
        drop = round((until_ms - self._pending_start_ms) * SAMPLE_RATE / 1000.0)
        while drop > 0 and self._pending:
            head = self._pending[0]
            if head.size <= drop:
                self._pending.pop(0)
                drop -= head.size
                self._pending_start_ms += head.size * 1000.0 / SAMPLE_RATE
            else:
                self._pending[0] = head[drop:]
                self._pending_start_ms += drop * 1000.0 / SAMPLE_RATE
                drop = 0
