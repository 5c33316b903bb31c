"""The output sinks every driver writes to: SRT and WebVTT subtitles, the JSON-lines log, the terminal caption view.

Files come in two modes, with the same sink classes on top:

- *atomic* (the CLI: ``replay``, ``mic``, ``client``): written under ``PATH.partial`` and renamed onto ``PATH`` by
  ``commit()`` (:class:`app.outputs.AtomicTextFile`); ``abort()`` leaves ``PATH`` as it was and keeps the partial
  file, so a failed run never truncates a good file;
- *append* (the server's per-session files): appended to ``PATH`` and flushed after every final, so nothing is lost
  when a client disconnects abruptly; ``commit()`` and ``abort()`` both close the file.

Subtitle cue formatting (line wrapping, time sharing, timestamps) is :mod:`streaming.subtitles`'; this module only
numbers the cues and writes them. Times are ms of stream time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, TextIO

from app.audio_sources import file_source, paced
from app.outputs import AppendTextFile, AtomicTextFile
from streaming.events import CaptionEvent, SegmentResult
from streaming.speech_pipeline import SpeechPipeline
from streaming.subtitles import VTT_HEADER, segment_cues, srt_block, vtt_block

DIM, RESET = "\x1b[2m", "\x1b[0m"
CLEAR_LINE = "\r\x1b[2K"


class TextOutput(Protocol):
    """A text file a sink writes to (:class:`AtomicTextFile` or :class:`AppendTextFile`); ``path``: its final path."""

    path: Path

    def write(self, text: str) -> None: ...

    def flush(self) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> Path | None: ...


def _open(path: str | Path, option: str, append: bool) -> AtomicTextFile | AppendTextFile:
    return AppendTextFile(path) if append else AtomicTextFile(path, option)


# -- files ------------------------------------------------------------------------------------------------
class _FileSink:
    """A sink over one text file: commit on success, abort on failure (both idempotent)."""

    def __init__(self, out: TextOutput) -> None:
        self.out = out

    @property
    def path(self) -> Path:
        """The file's final path."""
        return self.out.path

    def commit(self) -> None:
        self.out.commit()

    def abort(self) -> Path | None:
        """The kept partial file of an atomic output (None: nothing kept)."""
        return self.out.abort()


class SrtFile(_FileSink):
    """SRT cues of final segments, numbered from 1 by this writer (also when appending), flushed per segment."""

    def __init__(self, out: TextOutput) -> None:
        super().__init__(out)
        self.count = 0

    @classmethod
    def open(cls, path: str | Path, option: str = "--srt", *, append: bool = False) -> SrtFile:
        """``PATH`` written atomically (``option`` names it in errors), or appended to with ``append``."""
        return cls(_open(path, option, append))

    def add(self, text: str, start_ms: float, end_ms: float) -> None:
        """The cues of one final segment (its translation and its stream-time span, ms); none for empty text."""
        for cue in segment_cues(text, start_ms, end_ms):
            self.count += 1
            self.out.write(srt_block(self.count, cue))
        self.out.flush()


class VttFile(_FileSink):
    """WebVTT cues of final segments (the ``WEBVTT`` header first), flushed after each segment."""

    def __init__(self, out: TextOutput, *, header: bool = True) -> None:
        super().__init__(out)
        if header:
            self.out.write(VTT_HEADER)

    @classmethod
    def open(cls, path: str | Path, option: str = "--vtt", *, append: bool = False) -> VttFile:
        """``PATH`` written atomically, or appended to with ``append`` (the header only into an empty file)."""
        out = _open(path, option, append)
        return cls(out, header=not (isinstance(out, AppendTextFile) and out.existing))

    def add(self, text: str, start_ms: float, end_ms: float) -> None:
        """The cues of one final segment (stream-time span in ms)."""
        for cue in segment_cues(text, start_ms, end_ms):
            self.out.write(vtt_block(cue))
        self.out.flush()


class JsonlLog(_FileSink):
    """One JSON object per line (UTF-8 kept as is), flushed after each: instance records, session finals."""

    @classmethod
    def open(cls, path: str | Path, option: str = "--log", *, append: bool = False) -> JsonlLog:
        """``PATH`` written atomically (``option`` names it in errors), or appended to with ``append``."""
        return cls(_open(path, option, append))

    def write(self, obj: Mapping[str, Any]) -> None:
        self.out.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self.out.flush()


class SubtitleFiles:
    """The SRT and/or WebVTT files of one stream, fed final segments as they happen (either may be None)."""

    def __init__(self, srt: SrtFile | None = None, vtt: VttFile | None = None) -> None:
        self.srt, self.vtt = srt, vtt

    @classmethod
    def open(cls, srt: str | Path | None, vtt: str | Path | None) -> SubtitleFiles:
        """Atomic ``--srt`` / ``--vtt`` outputs of the CLI (None: not written)."""
        return cls(SrtFile.open(srt) if srt else None, VttFile.open(vtt) if vtt else None)

    def _sinks(self) -> list[SrtFile | VttFile]:
        return [f for f in (self.srt, self.vtt) if f is not None]

    def add(self, text: str, start_ms: float, end_ms: float) -> None:
        """One final segment: its translation and stream-time span (ms)."""
        for f in self._sinks():
            f.add(text, start_ms, end_ms)

    def add_segment(self, seg: SegmentResult) -> None:
        self.add(seg.record.prediction, seg.start_ms, seg.end_ms)

    def commit(self) -> None:
        for f in self._sinks():
            f.commit()

    def abort(self) -> list[Path]:
        """Leave the final paths untouched; returns the partial files kept."""
        return [k for f in self._sinks() if (k := f.abort()) is not None]


# -- terminal ---------------------------------------------------------------------------------------------
class CaptionView:
    """The caption on a terminal: on a TTY, one live line (stable words plain, the revisable tail dimmed) that each
    partial rewrites; every final on its own line as ``[start → end] text`` (seconds of stream time). Elsewhere
    (a pipe, a file) only the final lines."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()

    def partial(self, target: str, stable: int) -> None:
        """A revisable caption: ``stable`` of its words will not change."""
        if self.tty:
            words = target.split()
            self.out.write(f"{CLEAR_LINE}{' '.join(words[:stable])} {DIM}{' '.join(words[stable:])}{RESET}")
            self.out.flush()

    def final(self, target: str, start_ms: float, end_ms: float) -> None:
        """A finished segment (stream ms), replacing the live line."""
        prefix = CLEAR_LINE if self.tty else ""
        self.out.write(f"{prefix}[{start_ms / 1000:7.2f}s → {end_ms / 1000:7.2f}s] {target}\n")
        self.out.flush()

    def show(self, e: CaptionEvent) -> None:
        """A pipeline's event."""
        if e.type == "final":
            self.final(e.target, e.start_ms, e.end_ms)
        else:
            self.partial(e.target, e.stable)

    def show_message(self, msg: Mapping[str, Any]) -> None:
        """A server's ``partial`` / ``final`` message (other types are not captions: ignored)."""
        kind = msg.get("type")
        if kind == "final":
            self.final(str(msg["target"]), float(msg["start_ms"]), float(msg["end_ms"]))
        elif kind == "partial":
            self.partial(str(msg["target"]), int(msg.get("stable", 0)))


# -- a pipeline's outputs ---------------------------------------------------------------------------------
class PipelineOutputs:
    """Routes one speech pipeline's output: every caption event to the view, every segment to the subtitle files
    as soon as it is final (either may be None). Feed it the stream's samples, then :meth:`finish` it."""

    def __init__(self, pipe: SpeechPipeline, *, view: CaptionView | None = None,
                 subtitles: SubtitleFiles | None = None) -> None:
        self.pipe = pipe
        self.view = view
        self.subtitles = subtitles
        self._done = 0  # segments handed to the subtitle files

    def _take(self, events: Iterable[CaptionEvent]) -> None:
        if self.view is not None:
            for e in events:
                self.view.show(e)
        segments = self.pipe.segments
        while self._done < len(segments):
            if self.subtitles is not None:
                self.subtitles.add_segment(segments[self._done])
            self._done += 1

    def feed(self, samples: Any) -> None:
        """float32 mono 16 kHz samples."""
        self._take(self.pipe.feed(samples))

    def finish(self) -> None:
        """End of stream: the open segment's final."""
        self._take(self.pipe.finish())


def stream_file(pipe: SpeechPipeline, path: str | Path, *, realtime: bool = False, view: CaptionView | None = None,
                subtitles: SubtitleFiles | None = None) -> tuple[list[SegmentResult], float]:
    """Reset ``pipe`` and stream one audio file through it in 100 ms blocks (as fast as possible, or at real-time
    pace with ``realtime``), to ``view`` and ``subtitles``; returns its segments and its duration (ms)."""
    pipe.reset()
    outputs = PipelineOutputs(pipe, view=view, subtitles=subtitles)
    chunks = file_source(path)
    for chunk in paced(chunks) if realtime else chunks:
        outputs.feed(chunk.samples)
    outputs.finish()
    return list(pipe.segments), pipe.audio_ms

