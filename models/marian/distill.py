"""Sequence-level knowledge distillation with the AR teacher (CTranslate2, beam search).

For every training sentence the teacher translates the full sentence and each of its word prefixes
(1..n−1 words). Prefix translations lose their sentence-final punctuation (the prefix does not end a
sentence). The result feeds the NAT model (full + prefix pairs), wait-k training and the interleaved
chunks of the LLM policy.

Output: ``OUT/distill.jsonl``, one object per sentence, in corpus order::

    {"index": 0, "source": "...", "full": "...", "prefixes": ["t(1 word)", ..., "t(n-1 words)"]}

Written in shards of ``shard_size`` sentences and resumable: a rerun skips the shards already written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from models.marian.runtime import CT2Translator, DecodeOptions
from streaming.errors import WorkDirError
from streaming.policies.reta import strip_sentence_end

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillOptions:
    """``beam_size`` of the teacher; ``max_prefix_words``: longer sentences get prefixes only up to this."""

    beam_size: int = 4
    shard_size: int = 500
    max_prefix_words: int = 40
    threads: int = 2


@dataclass(frozen=True)
class DistilledPair:
    """One sentence with the teacher's translations of it and of its word prefixes."""

    index: int
    source: str
    full: str
    prefixes: list[str]

    def to_json(self) -> dict[str, object]:
        return {"index": self.index, "source": self.source, "full": self.full, "prefixes": self.prefixes}


def prefix_sources(source: str, max_words: int) -> list[str]:
    """The proper word prefixes of ``source`` (1..n−1 words, at most ``max_words``)."""
    words = source.split()
    return [" ".join(words[:j]) for j in range(1, min(len(words), max_words + 1)) if j < len(words)]


def distill_shard(
    translator: CT2Translator, start: int, sources: list[str], opts: DistillOptions
) -> list[DistilledPair]:
    """Translate one shard: all full sentences and all their prefixes in one batched call."""
    requests: list[str] = []
    spans: list[tuple[int, int]] = []
    for s in sources:
        pre = prefix_sources(s, opts.max_prefix_words)
        spans.append((len(requests), len(pre)))
        requests.append(s)
        requests.extend(pre)
    outputs = translator.translate(requests, DecodeOptions(beam_size=opts.beam_size))
    pairs: list[DistilledPair] = []
    for i, (s, (at, n_pre)) in enumerate(zip(sources, spans, strict=True)):
        pre_src = requests[at + 1 : at + 1 + n_pre]
        prefixes = [" ".join(strip_sentence_end(tuple(outputs[at + 1 + j].split()), tuple(p.split())))
                    for j, p in enumerate(pre_src)]
        pairs.append(DistilledPair(start + i, s, outputs[at], prefixes))
    return pairs


def distill(teacher_dir: Path, sources: list[str], out_dir: Path, opts: DistillOptions = DistillOptions()) -> Path:
    """Distil ``sources`` into ``out_dir/distill.jsonl`` (resumable by shard); returns the file path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "distill.jsonl"
    done = _count_lines(out)
    if done % opts.shard_size and done != len(sources):
        raise WorkDirError(f"{out} ends mid-shard ({done} lines): delete it to start over")
    translator = CT2Translator(teacher_dir, intra_threads=1, inter_threads=opts.threads)
    with open(out, "a", encoding="utf-8") as f:
        starts = range(done, len(sources), opts.shard_size)
        for start in tqdm(starts, desc="distil", unit="shard", initial=0):
            shard = sources[start : start + opts.shard_size]
            for pair in distill_shard(translator, start, shard, opts):
                f.write(json.dumps(pair.to_json(), ensure_ascii=False) + "\n")
            f.flush()
    return out


def read_distilled(path: Path) -> Iterator[DistilledPair]:
    """Read ``distill.jsonl`` lazily."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            yield DistilledPair(d["index"], d["source"], d["full"], d["prefixes"])


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, encoding="utf-8") as f:
        return sum(1 for _ in f)
