"""Joint SentencePiece model for source and target (Marian layout: ``<pad>`` goes last in ``vocab.json``)."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import sentencepiece as spm

logger = logging.getLogger(__name__)

UNK = "<unk>"
EOS = "</s>"
PAD = "<pad>"


def train_joint_spm(texts: list[str], model_prefix: Path, *, vocab_size: int = 8000, seed: int = 1) -> Path:
    """Train one unigram SentencePiece model on ``texts``; returns the ``.model`` path.

    ids: 0 = ``<unk>``, 1 = ``</s>``; no BOS and no pad inside SentencePiece (Marian appends ``<pad>`` last).
    """
    model_prefix.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False) as f:
        for t in texts:
            f.write(t + "\n")
        corpus = f.name
    spm.SentencePieceTrainer.train(
        input=corpus,
        model_prefix=str(model_prefix),
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        unk_id=0,
        eos_id=1,
        bos_id=-1,
        pad_id=-1,
        num_threads=2,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    Path(corpus).unlink()
    return model_prefix.with_suffix(".model")


def marian_vocab(spm_model: Path) -> dict[str, int]:
    """The Marian ``vocab.json`` mapping for a SentencePiece model: its pieces in id order, then ``<pad>``."""
    sp = spm.SentencePieceProcessor(model_file=str(spm_model))
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    if PAD in vocab:
        raise ValueError(f"{spm_model} already has {PAD}; train it with pad_id=-1")
    vocab[PAD] = len(vocab)
    return vocab


def write_marian_tokenizer_files(spm_model: Path, out_dir: Path, *, model_max_length: int = 256) -> None:
    """Write ``source.spm``, ``target.spm``, ``vocab.json`` and ``tokenizer_config.json`` for a joint model."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = spm_model.read_bytes()
    (out_dir / "source.spm").write_bytes(data)
    (out_dir / "target.spm").write_bytes(data)
    vocab = json.dumps(marian_vocab(spm_model), ensure_ascii=False, indent=0)
    (out_dir / "vocab.json").write_text(vocab, encoding="utf-8")
    cfg = {
        "tokenizer_class": "MarianTokenizer",
        "model_max_length": model_max_length,
        "eos_token": EOS,
        "unk_token": UNK,
        "pad_token": PAD,
        "separate_vocabs": False,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
