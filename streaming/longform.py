"""Scoring speech replays, long-form or not: one scorer for ``simulsub replay`` and the speech benchmarks (I/O-free).

Each audio stream's finished segments become instance records: one per reference sentence (the stream's final
words re-segmented onto the reference, see :mod:`streaming.resegment`), or one for the whole stream without a
reference. The records then carry their segments' on-screen erasures, compute and update counts and, on a
stream's first instance, its audio length (:func:`streaming.resegment.attach_segment_stats`), so that the corpus
scores — NE and ``rtf`` included — come from the records alone, exactly as ``simulsub score`` recomputes them
from the instances log. Times are ms of the 16 kHz stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from streaming.instance import InstanceRecord, score_instances
from streaming.metrics.quality import word_error_rate
from streaming.metrics.runtime import real_time_factor
from streaming.resegment import TimedWord, attach_segment_stats, stream_instances

if TYPE_CHECKING:
    from streaming.events import SegmentResult


def timed_words(segments: Sequence[SegmentResult]) -> list[TimedWord]:
    """Every final word of a stream with its stream-time delay and computation-aware time (ms)."""
    out = []
    for seg in segments:
        rec = seg.record
        elapsed = rec.elapsed or rec.delays
        for w, d, e in zip(rec.prediction.split(), rec.delays, elapsed, strict=True):
            out.append(TimedWord(w, seg.start_ms + d, seg.start_ms + e, seg.start_ms, seg.end_ms))
    return out


def stream_records(segments: Sequence[SegmentResult], duration_ms: float, *, index: int,
                   reference: str | None = None,
                   sentence_times: Sequence[tuple[float, float]] | None = None) -> list[InstanceRecord]:
    """The instance records of one stream of ``duration_ms`` ms: one per sentence of ``reference`` (delays in ms
    from the sentence's start; ``sentence_times`` override the spans estimated from the VAD segments), or, without
    a reference, one for the whole stream (delays in stream ms). Segment statistics attached (see the module).

    Raises ValueError when ``sentence_times`` does not have one span per reference sentence.
    """
    words = timed_words(segments)
    if reference is not None:
        records = stream_instances(words, reference, duration_ms, index=index, sentence_times=sentence_times)
    else:
        records = [InstanceRecord(index=index, prediction=" ".join(w.text for w in words),
                                  delays=[w.delay for w in words], elapsed=[w.elapsed for w in words],
                                  source_length=max(duration_ms, 1.0))]
    attach_segment_stats(records, [(s.start_ms, s.end_ms, s.record) for s in segments], duration_ms)
    return records


@dataclass
class LongFormScorer:
    """Streams added one by one (their segments and length), then scored together.

    ``records``: every instance so far; ``transcripts``: each stream's ASR transcript (its segments' sources
    joined); ``audio_ms``: the audio scored, ms.
    """

    records: list[InstanceRecord] = field(default_factory=list)
    transcripts: list[str] = field(default_factory=list)
    audio_ms: float = 0.0

    @property
    def streams(self) -> int:
        """Streams (audio files) added."""
        return len(self.transcripts)

    def add(self, segments: Sequence[SegmentResult], duration_ms: float, *, reference: str | None = None,
            sentence_times: Sequence[tuple[float, float]] | None = None) -> list[InstanceRecord]:
        """Score one more stream (its index is the number of streams added before it); returns its records, the
        first carrying the stream's ASR transcript as ``source``. ValueError: see :func:`stream_records`."""
        records = stream_records(segments, duration_ms, index=self.streams, reference=reference,
                                 sentence_times=sentence_times)
        transcript = " ".join(s.source for s in segments)
        records[0].source = transcript
        self.records.extend(records)
        self.transcripts.append(transcript)
        self.audio_ms += duration_ms
        return records

    def scores(self, references: Sequence[str] | None = None, *,
               wall_ms: float | None = None) -> dict[str, float]:
        """Corpus scores of every record (:func:`streaming.instance.score_instances`: BLEU, AL/LAAL (ms), their
        computation-aware variants, NE, compute and ``rtf``), then ``wall_rtf`` when ``wall_ms`` (the run's wall
        time) is given, ``audio_s``, ``files`` (streams) and, with one reference transcript per stream in
        ``references``, the ASR's ``WER``. ``rtf`` is 0.0 when there is no audio (nothing was computed)."""
        scores = dict(score_instances(self.records))
        scores.setdefault("rtf", 0.0)
        if wall_ms is not None:
            scores["wall_rtf"] = real_time_factor(wall_ms, self.audio_ms) or 0.0
        scores["audio_s"] = self.audio_ms / 1000.0
        scores["files"] = self.streams
        if references is not None:
            scores["WER"] = word_error_rate(self.transcripts, references)
        return scores
