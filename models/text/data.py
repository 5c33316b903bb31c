"""Parallel text corpora (Multi30k layout: ``{split}.{lang}``, one sentence per line)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "multi30k"


def multi30k_dir() -> Path:
    """The Multi30k folder: ``$SIMULSUB_MULTI30K`` if set, else ``../shared/data/multi30k`` beside the checkout."""
    return Path(os.environ.get("SIMULSUB_MULTI30K", DEFAULT_DATA_DIR))


def read_lines(path: Path) -> list[str]:
    """Read a UTF-8 text file as a list of lines without their line endings."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").rstrip("\r") for line in f]


@dataclass(frozen=True)
class ParallelCorpus:
    """Aligned source/target sentences of one split."""

    source: list[str]
    target: list[str]

    def __post_init__(self) -> None:
        if len(self.source) != len(self.target):
            raise ValueError(f"source has {len(self.source)} lines but target has {len(self.target)}")

    def __len__(self) -> int:
        return len(self.source)


def load_split(data_dir: Path, split: str, src_lang: str, tgt_lang: str) -> ParallelCorpus:
    """Load ``{split}.{src_lang}`` / ``{split}.{tgt_lang}`` from ``data_dir``."""
    src = data_dir / f"{split}.{src_lang}"
    tgt = data_dir / f"{split}.{tgt_lang}"
    for p in (src, tgt):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: point --data-dir (or $SIMULSUB_MULTI30K) at the Multi30k folder")
    return ParallelCorpus(read_lines(src), read_lines(tgt))
