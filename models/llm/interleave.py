"""Interleaved read/write training data for a decoder-only simultaneous translator (EAST format).

A training example is a latency prompt followed by aligned chunks::

    src1<|end-of-read|>tgt1<|end-of-write|> src2<|end-of-read|> tgt2<|end-of-write|>…

The chunks come from our own AR teacher (``simulsub distill`` output), not from a large LLM: for each source
prefix of ``j`` words the teacher's translation of that prefix ``P_j`` is compared with its translation of the
whole sentence ``F``; the longest common word prefix of ``P_j`` and ``F`` is what is already safe to write after
``j`` words (made non-decreasing in ``j``; all of ``F`` once the source has ended). A latency level adds
``extra`` source words before each write: ``low`` writes as soon as the teacher agrees with itself,
``medium`` and ``high`` read 2 and 4 more words first. Offline pairs (one chunk: the whole source, then the
whole translation) are mixed in with their own prompt.

Everything here is plain Python on words; tokenisation is :mod:`models.llm.tokens`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streaming.caption import common_prefix_len
from streaming.policies.llm import LATENCY_LEVELS  # the one list of the LLM's latency prompts

EXTRA_WORDS = {"low": 0, "medium": 2, "high": 4}
OFFLINE = "offline"


@dataclass(frozen=True)
class Chunk:
    """One read/write step: the source words read, then the target words written (never both empty)."""

    source: tuple[str, ...]
    target: tuple[str, ...]


def safe_target_lengths(prefix_translations: Sequence[str], full: str, source_len: int) -> list[int]:
    """``c[j]`` = target words safe to write after ``j + 1`` source words (non-decreasing; ``c[-1]`` = |F|).

    ``prefix_translations[j]`` is the teacher's translation of the first ``j + 1`` words (one per proper
    prefix; missing ones count as agreeing on nothing).
    """
    target = full.split()
    out: list[int] = []
    best = 0
    for j in range(source_len - 1):
        hyp = prefix_translations[j].split() if j < len(prefix_translations) else []
        best = max(best, common_prefix_len(hyp, target))
        out.append(best)
    out.append(len(target))
    return out


def chunk_pair(source: str, full: str, prefix_translations: Sequence[str], level: str) -> list[Chunk]:
    """The aligned chunks of one sentence pair at a latency ``level`` (or ``offline``: one chunk)."""
    words = source.split()
    target = full.split()
    if not words or not target:
        return []
    if level == OFFLINE:
        return [Chunk(tuple(words), tuple(target))]
    if level not in EXTRA_WORDS:
        raise ValueError(f"unknown latency level {level!r}; choose one of {', '.join(LATENCY_LEVELS)}")
    extra = EXTRA_WORDS[level]
    safe = safe_target_lengths(prefix_translations, full, len(words))
    chunks: list[Chunk] = []
    read_from, written = 0, 0
    for r in range(1, len(words) + 1):  # r source words read
        j = r - extra  # the prefix whose agreement may be written now
        can_write = len(target) if r == len(words) else (safe[j - 1] if j >= 1 else 0)
        if can_write > written:
            chunks.append(Chunk(tuple(words[read_from:r]), tuple(target[written:can_write])))
            read_from, written = r, can_write
    return chunks


def instruction(level: str, source_lang: str = "English", target_lang: str = "German") -> str:
    """The latency prompt (EAST's wording, shortened for a small model)."""
    if level == OFFLINE:
        return f"Translate the following {source_lang} text into {target_lang}."
    return f"Translate the following {source_lang} text into {target_lang} with {level} latency."


def render_text(chunks: Sequence[Chunk], eor: str, eow: str) -> str:
    """The interleaved text of ``chunks`` (for inspection and for tokenizers used as plain text)."""
    parts = []
    for i, c in enumerate(chunks):
        lead = "" if i == 0 else " "
        parts.append(f"{lead}{' '.join(c.source)}{eor}{lead}{' '.join(c.target)}{eow}")
    return "".join(parts)
