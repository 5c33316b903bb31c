"""What every pipeline (speech or text) emits: caption events, and the record of each finished segment.

Times: ``start_ms``/``end_ms`` are stream time in ms (16 kHz audio since the stream started for speech; the
driver's clock since the stream started for text). ``latency_ms`` has one meaning for both: the
computation-aware lag of the caption behind the input it reflects, i.e. the model compute (ASR and policy) spent
on the segment so far, in ms (SimulEval's computation-aware convention: an output appears after the input it
reflects plus every computation made on the segment before it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from streaming.instance import InstanceRecord


@dataclass(frozen=True)
class CaptionEvent:
    """One caption update (the server's ``partial``/``final`` messages carry these fields)."""

    type: Literal["partial", "final"]
    segment: int
    revision: int
    stable: int  # words of ``target`` that will not change
    source: str
    target: str
    start_ms: float  # segment start (stream time)
    end_ms: float  # input received when this was produced (stream time)
    latency_ms: float  # computation-aware lag: compute spent on the segment so far (ms)

    def to_json(self) -> dict[str, object]:
        return {"type": self.type, "segment": self.segment, "revision": self.revision, "stable": self.stable,
                "source": self.source, "target": self.target, "start_ms": round(self.start_ms, 1),
                "end_ms": round(self.end_ms, 1), "latency_ms": round(self.latency_ms, 1)}


@dataclass
class SegmentResult:
    """A finished segment: its stream-time span (ms) and its record.

    The record's delays are in ms from ``start_ms`` for speech and in source words for text.
    """

    index: int
    start_ms: float
    end_ms: float
    record: InstanceRecord
    source: str
