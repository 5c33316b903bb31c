"""SRT and WebVTT cues from final segments (I/O-free formatting; drivers append them to files).

A segment's translation becomes one or more cues of at most ``max_lines`` lines of ``max_chars`` characters
(the usual broadcast limits: 2 × 42). A long segment is split at word boundaries and its time span
(stream ms) is shared between the cues in proportion to their characters, so a cue is on screen while
roughly its part of the utterance is spoken.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cue:
    """One subtitle: ``start_ms`` .. ``end_ms`` of stream time and its (possibly two-line) text."""

    start_ms: float
    end_ms: float
    text: str


def _timestamp(ms: float, sep: str) -> str:
    total = max(0, round(ms))
    h, rest = divmod(total, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, milli = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{milli:03d}"


def srt_timestamp(ms: float) -> str:
    """``HH:MM:SS,mmm``."""
    return _timestamp(ms, ",")


def vtt_timestamp(ms: float) -> str:
    """``HH:MM:SS.mmm``."""
    return _timestamp(ms, ".")


def wrap_lines(words: list[str], max_chars: int) -> list[str]:
    """Greedy line filling at word boundaries (a single word longer than ``max_chars`` gets its own line)."""
    lines: list[str] = []
    cur = ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > max_chars:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    if cur:
        lines.append(cur)
    return lines


def segment_cues(text: str, start_ms: float, end_ms: float, *, max_chars: int = 42, max_lines: int = 2) -> list[Cue]:
    """Cues for one final segment; empty text gives none."""
    lines = wrap_lines(text.split(), max_chars)
    if not lines:
        return []
    blocks = ["\n".join(lines[i : i + max_lines]) for i in range(0, len(lines), max_lines)]
    weights = [max(1, len(b)) for b in blocks]
    span = max(end_ms - start_ms, 1.0)
    cues, t = [], start_ms
    total = sum(weights)
    for block, w in zip(blocks, weights, strict=True):
        t_end = t + span * w / total
        cues.append(Cue(t, t_end, block))
        t = t_end
    return cues


def srt_block(index: int, cue: Cue) -> str:
    """One SRT entry (``index`` counts from 1), ending with a blank line."""
    return f"{index}\n{srt_timestamp(cue.start_ms)} --> {srt_timestamp(cue.end_ms)}\n{cue.text}\n\n"


VTT_HEADER = "WEBVTT\n\n"


def vtt_block(cue: Cue) -> str:
    """One WebVTT cue, ending with a blank line (the file starts with :data:`VTT_HEADER`)."""
    return f"{vtt_timestamp(cue.start_ms)} --> {vtt_timestamp(cue.end_ms)}\n{cue.text}\n\n"
