"""ASR text normalisation and the SentencePiece vocabulary of our Paraformer (FunASR special-token layout).

Transcripts are lower-cased and stripped of punctuation except apostrophes and in-word hyphens, because
speech carries neither case nor punctuation. Ids: 0 ``<blank>``, 1 ``<s>``, 2 ``</s>``, 3 ``<unk>``, then
SentencePiece unigram pieces (``▁`` marks a word start), so ``tokens.json`` is the SentencePiece id order.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm

from models.asr.tokens import BLANK, EOS, SOS, UNK, TokenList

_DROP = re.compile(r"[^a-z0-9' \-]+")
_SPACE = re.compile(r"\s+")


def normalize_transcript(text: str) -> str:
    """``"Two young, White males."`` → ``"two young white males"`` (what an ASR model should output)."""
    t = _DROP.sub(" ", text.lower().replace("’", "'"))
    t = re.sub(r"(?<![a-z0-9])[-']|[-'](?![a-z0-9])", " ", t)
    return _SPACE.sub(" ", t).strip()


def train_asr_spm(texts: Iterable[str], model_prefix: Path, *, vocab_size: int = 1000) -> Path:
    """Train a unigram SentencePiece model on normalised ``texts``; returns the ``.model`` path."""
    model_prefix.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False) as f:
        for t in texts:
            f.write(normalize_transcript(t) + "\n")
        corpus = f.name
    try:
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=str(model_prefix), vocab_size=vocab_size, model_type="unigram",
            character_coverage=1.0, pad_id=0, pad_piece=BLANK, bos_id=1, bos_piece=SOS, eos_id=2, eos_piece=EOS,
            unk_id=3, unk_piece=UNK, num_threads=1, input_sentence_size=0, shuffle_input_sentence=False,
            minloglevel=2, hard_vocab_limit=False,
        )
    finally:
        Path(corpus).unlink()
    return model_prefix.with_suffix(".model")


class AsrTokenizer:
    """Encode normalised transcripts to ids and back (ids match ``tokens.json``)."""

    def __init__(self, model_file: Path) -> None:
        self.model_file = model_file
        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self.token_list = TokenList([self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())])

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return list(self.sp.encode(normalize_transcript(text)))

    def decode(self, ids: Iterable[int]) -> str:
        return self.token_list.to_text([int(i) for i in ids])
