"""SimulEval-compatible instance records and their corpus scores.

One record per instance (sentence or segment) with the fields of SimulEval's ``instances.log``:
``index, prediction, delays, elapsed, prediction_length, reference, source_length`` (plus, here,
``revisions``: every displayed output, for Normalized Erasure — or only ``erased``, its erased-word count, for
records compacted by a long stream — and ``compute_ms``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from streaming.caption import CaptionState, common_prefix_len
from streaming.errors import InputFormatError
from streaming.metrics.latency import LatencyInput, corpus_latency
from streaming.metrics.quality import corpus_bleu, corpus_chrf, normalized_erasure


class LogFormatError(InputFormatError):
    """An instances-log line is not a valid record."""


@dataclass
class InstanceRecord:
    """One scored instance. Delays/elapsed are per prediction word, in source words (text) or ms (speech)."""

    index: int
    prediction: str
    delays: list[float]
    source_length: float
    elapsed: list[float] | None = None
    reference: str | None = None
    revisions: list[str] | None = None
    erased: int | None = None  # words erased on screen, kept instead of ``revisions`` by :meth:`compact`
    compute_ms: float | None = None
    updates: int | None = None
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def prediction_length(self) -> int:
        return len(self.prediction.split())

    @property
    def reference_length(self) -> int | None:
        """Whitespace-separated words of the reference. SimulEval counts ``reference.split(" ")``, which agrees
        except on doubled, leading or trailing spaces and tabs, where it counts empty strings as words."""
        return None if self.reference is None else len(self.reference.split())

    def erased_words(self) -> int:
        """Words erased between successive displayed revisions (``erased`` once compacted; 0 without either)."""
        if self.revisions is None and self.erased is not None:
            return self.erased
        erased, prev = 0, list[str]()
        for text in self.revisions or []:
            cur = text.split()
            erased += len(prev) - common_prefix_len(prev, cur)
            prev = cur
        return erased

    @classmethod
    def from_caption(
        cls, index: int, caption: CaptionState, *, source_length: float, reference: str | None = None,
        compute_ms: float | None = None, updates: int | None = None, source: str | None = None,
    ) -> InstanceRecord:
        delays, elapsed = caption.word_timing()
        return cls(
            index=index, prediction=" ".join(caption.final_words), delays=delays, elapsed=elapsed,
            source_length=source_length, reference=reference,
            revisions=[r.text for r in caption.revisions], compute_ms=compute_ms, updates=updates, source=source,
        )

    def compact(self) -> InstanceRecord:
        """The same record with the revision history replaced by its erased-word count: what a long stream keeps
        per finished segment (the history is what grows with every partial; NE needs only the count)."""
        if self.revisions is None:
            return self
        return replace(self, revisions=None, erased=self.erased_words())

    @property
    def has_erasure(self) -> bool:
        """Whether Normalized Erasure can be computed (a revision history or its count)."""
        return self.revisions is not None or self.erased is not None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "index": self.index, "prediction": self.prediction, "delays": self.delays,
            "elapsed": self.elapsed, "prediction_length": self.prediction_length,
            "reference": self.reference, "source_length": self.source_length,
        }
        for key in ("source", "revisions", "erased", "compute_ms", "updates"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        d.update(self.extra)
        return d

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, default_index: int = 0) -> InstanceRecord:
        """Validate and read one log object (``prediction``, ``delays``, ``source_length`` are required)."""
        if not isinstance(obj, Mapping):
            raise LogFormatError("a log line must be a JSON object")
        for key in ("prediction", "delays", "source_length"):
            if key not in obj:
                raise LogFormatError(f"missing field '{key}'")
        pred, delays, src_len = obj["prediction"], obj["delays"], obj["source_length"]
        if not isinstance(pred, str):
            raise LogFormatError("'prediction' must be a string")
        if not _numbers(delays):
            raise LogFormatError("'delays' must be a list of numbers")
        if not isinstance(src_len, (int, float)) or isinstance(src_len, bool) or not 0 < src_len < math.inf:
            raise LogFormatError("'source_length' must be a positive number")
        if len(delays) != len(pred.split()):
            raise LogFormatError(f"{len(delays)} delays for {len(pred.split())} prediction words")
        elapsed = obj.get("elapsed")
        if elapsed is not None and (not _numbers(elapsed) or len(elapsed) != len(delays)):
            raise LogFormatError("'elapsed' must be a list of numbers, one per delay")
        ref = obj.get("reference")
        if ref is not None and not isinstance(ref, str):
            raise LogFormatError("'reference' must be a string or null")
        revisions = obj.get("revisions")
        if revisions is not None and not (isinstance(revisions, list) and all(isinstance(r, str) for r in revisions)):
            raise LogFormatError("'revisions' must be a list of strings")
        erased = obj.get("erased")
        if erased is not None and (not isinstance(erased, int) or isinstance(erased, bool) or erased < 0):
            raise LogFormatError("'erased' must be a non-negative integer")
        index = obj.get("index", default_index)
        known = {"index", "prediction", "delays", "elapsed", "prediction_length", "reference", "source_length",
                 "revisions", "erased", "compute_ms", "updates", "source"}
        return cls(
            index=int(index), prediction=pred, delays=[float(x) for x in delays], source_length=float(src_len),
            elapsed=None if elapsed is None else [float(x) for x in elapsed], reference=ref, revisions=revisions,
            erased=erased, compute_ms=obj.get("compute_ms"), updates=obj.get("updates"), source=obj.get("source"),
            extra={k: v for k, v in obj.items() if k not in known},
        )


def _numbers(x: object) -> bool:
    """A list of finite numbers (JSON's NaN/Infinity extensions are refused: they would poison every mean)."""
    return isinstance(x, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                       for v in x)


def score_instances(records: Sequence[InstanceRecord]) -> dict[str, float]:
    """Corpus scores: AL/LAAL/DAL/AP, their _CA variants when every record has ``elapsed``, BLEU/chrF when
    every record has a reference, NE when revisions (or their erased-word counts) are logged, compute per
    sentence/update when known, and ``rtf`` (compute ms per ms of audio) when speech records carry
    ``audio_ms`` (``simulsub replay`` logs do)."""
    out: dict[str, float] = {"n": float(len(records))}
    lat = [LatencyInput(r.delays, r.source_length, r.reference_length, r.elapsed) for r in records]
    out.update(corpus_latency(lat))
    if records and all(r.elapsed is not None for r in records):
        out.update(corpus_latency(lat, computation_aware=True))
    if records and all(r.reference is not None for r in records):
        hyps = [r.prediction for r in records]
        refs = [r.reference or "" for r in records]
        out["BLEU"] = corpus_bleu(hyps, refs)
        out["chrF"] = corpus_chrf(hyps, refs)
    if records and all(r.has_erasure for r in records):
        out["NE"] = normalized_erasure([r.erased_words() for r in records], [r.prediction_length for r in records])
    if records and all(r.compute_ms is not None for r in records):
        total = sum(r.compute_ms or 0.0 for r in records)
        out["compute_ms_per_sentence"] = total / len(records)
        n_upd = sum(r.updates or 0 for r in records)
        if n_upd:
            out["compute_ms_per_update"] = total / n_upd
        audio_ms = sum(_audio_ms(r) for r in records)
        if audio_ms > 0:  # speech logs: each stream's audio length rides on its first instance
            out["rtf"] = total / audio_ms
    return out


def _audio_ms(record: InstanceRecord) -> float:
    value = record.extra.get("audio_ms", 0.0)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) and value > 0 else 0.0
