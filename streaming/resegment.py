"""Score long-form output against sentence references: re-segmentation (StreamLAAL-style), I/O-free.

Our segments are VAD utterances, not the reference's sentences, so a long-form file's translation is first
re-segmented onto the reference sentences, as mwerSegmenter does for SimulEval's long-form evaluation
(Papi et al. 2024, "StreamAtt ... StreamLAAL"): the hypothesis words are aligned to the concatenated
reference words by a word-level Levenshtein alignment (case-insensitive), each hypothesis word goes to the
sentence of the reference word it is aligned to (an inserted word goes with the previous aligned one), and
the hypothesis is cut where the sentences change. Each reference sentence then becomes one instance:

- quality: BLEU/chrF over the re-segmented pairs;
- latency: each word's emission time (stream ms) minus the sentence's start in the audio, with the
  sentence's duration as source length (LAAL per sentence, then averaged); sentence times come from a
  timestamps file when known (our rendered recordings have them) and are otherwise estimated from the
  VAD segments whose words landed in the sentence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streaming.instance import InstanceRecord


@dataclass(frozen=True)
class TimedWord:
    """A final output word and when it was shown (stream ms; ``elapsed`` computation-aware)."""

    text: str
    delay: float
    elapsed: float
    segment_start: float
    segment_end: float


def align_to_sentences(hyp: Sequence[str], sentences: Sequence[str]) -> list[int]:
    """Sentence index (0-based) of each hypothesis word, non-decreasing; all 0 for a single sentence."""
    if not hyp:
        return []
    ref: list[str] = []
    sent_of: list[int] = []
    for j, s in enumerate(sentences):
        words = s.split()
        ref.extend(w.lower() for w in words)
        sent_of.extend([j] * len(words))
    if len(sentences) <= 1 or not ref:
        return [0] * len(hyp)
    h = [w.lower() for w in hyp]
    n, m = len(h), len(ref)
    vocab: dict[str, int] = {}
    ref_ids = np.array([vocab.setdefault(w, len(vocab)) for w in ref])
    idx = np.arange(m + 1)
    d = np.zeros((n + 1, m + 1), dtype=np.int32)
    d[0] = idx
    for i in range(1, n + 1):
        hid = vocab.get(h[i - 1], -1)
        sub = d[i - 1, :-1] + (ref_ids != hid)
        a = np.empty(m + 1, dtype=np.int64)
        a[0] = d[i - 1, 0] + 1
        a[1:] = np.minimum(d[i - 1, 1:] + 1, sub)
        d[i] = np.minimum.accumulate(a - idx) + idx  # the row's left-to-right insertions, vectorised
    # backtrace: ref position each hypothesis word is attached to (-1 = inserted)
    pos = [-1] * n
    i, j = n, m
    while i > 0:
        if j > 0 and d[i, j] == d[i - 1, j - 1] + (ref[j - 1] != h[i - 1]):
            pos[i - 1] = j - 1
            i, j = i - 1, j - 1
        elif d[i, j] == d[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    out: list[int] = []
    first = next((p for p in pos if p >= 0), 0)
    cur = sent_of[first] if pos and first >= 0 else 0
    for p in pos:
        if p >= 0:
            cur = max(cur, sent_of[p]) if out else sent_of[p]
        out.append(cur)
    return out


def split_by_sentence(words: Sequence[TimedWord], sentences: Sequence[str]) -> list[list[TimedWord]]:
    """The hypothesis words of each reference sentence (some lists may be empty)."""
    groups: list[list[TimedWord]] = [[] for _ in sentences]
    for w, j in zip(words, align_to_sentences([w.text for w in words], sentences), strict=True):
        groups[j].append(w)
    return groups


def sentence_spans(groups: Sequence[Sequence[TimedWord]], total_ms: float) -> list[tuple[float, float]]:
    """Estimated (start, end) stream ms of each sentence from the VAD segments of its words.

    A sentence without words gets the gap between its neighbours.
    """
    spans: list[tuple[float, float] | None] = [
        (min(w.segment_start for w in g), max(w.segment_end for w in g)) if g else None for g in groups
    ]
    out: list[tuple[float, float]] = []
    prev_end = 0.0
    for k, span in enumerate(spans):
        if span is None:
            nxt = next((s[0] for s in spans[k + 1 :] if s is not None), total_ms)
            span = (prev_end, max(prev_end, nxt))
        out.append(span)
        prev_end = span[1]
    return out


SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    """Reference line → sentences, cut after ``.``, ``!`` or ``?`` followed by whitespace."""
    return [s for s in (x.strip() for x in SENTENCE_END.split(text.strip())) if s]


def stream_instances(words: Sequence[TimedWord], reference: str, duration_ms: float, *, index: int = 0,
                     sentence_times: Sequence[tuple[float, float]] | None = None) -> list[InstanceRecord]:
    """One instance per reference sentence of a stream (a single sentence: the whole stream is one instance).

    Delays and elapsed are ms from the sentence's start in the audio; ``source_length`` is its duration.
    ``sentence_times`` (stream ms, one pair per sentence) override the estimate from the VAD segments.
    """
    sentences = split_sentences(reference) or [reference]
    if sentence_times is not None and len(sentence_times) != len(sentences):
        raise ValueError(f"{len(sentence_times)} sentence times for {len(sentences)} reference sentences")
    if len(sentences) == 1:
        groups = [list(words)]
        spans = list(sentence_times) if sentence_times is not None else [(0.0, duration_ms)]
    else:
        groups = split_by_sentence(words, sentences)
        spans = list(sentence_times) if sentence_times is not None else sentence_spans(groups, duration_ms)
    out = []
    for j, (group, sentence, (start, end)) in enumerate(zip(groups, sentences, spans, strict=True)):
        out.append(InstanceRecord(
            index=index * 1000 + j if len(sentences) > 1 else index,
            prediction=" ".join(w.text for w in group),
            delays=[max(0.0, w.delay - start) for w in group],
            elapsed=[max(0.0, w.elapsed - start) for w in group],
            source_length=max(end - start, 1.0), reference=sentence,
            extra={"stream": index, "sentence": j, "start_ms": round(start, 1), "end_ms": round(end, 1)},
        ))
    return out


def attach_segment_stats(instances: Sequence[InstanceRecord],
                         segments: Sequence[tuple[float, float, InstanceRecord]], audio_ms: float) -> None:
    """Give the instances of one stream the on-screen erasure, compute and update counts of its VAD segments
    (``(start_ms, end_ms, record)`` each), so that a scorer reading only the instances log reproduces the
    stream's NE and compute figures. A segment counts towards the instance whose span (``extra`` ``start_ms`` /
    ``end_ms``; the whole stream for a single instance) holds its midpoint, or the nearest one. The stream's
    audio length (ms) goes to its first instance as ``extra["audio_ms"]`` (the real-time factor's denominator).
    Modifies ``instances`` in place."""
    if not instances:
        return
    erased = [0] * len(instances)
    compute = [0.0] * len(instances)
    updates = [0] * len(instances)
    spans = [(float(r.extra.get("start_ms", 0.0)), float(r.extra.get("end_ms", audio_ms))) for r in instances]
    for start, end, record in segments:
        mid = (start + end) / 2.0
        k = min(range(len(spans)), key=lambda j: 0.0 if spans[j][0] <= mid < spans[j][1]
                else min(abs(mid - spans[j][0]), abs(mid - spans[j][1])))
        erased[k] += record.erased_words()
        compute[k] += record.compute_ms or 0.0
        updates[k] += record.updates or 0
    for r, e, c, u in zip(instances, erased, compute, updates, strict=True):
        r.erased, r.compute_ms, r.updates = e, c, u
    instances[0].extra["audio_ms"] = audio_ms
