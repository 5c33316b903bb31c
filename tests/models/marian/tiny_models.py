"""Tiny SentencePiece and multilingual (M2M100/NLLB-style) CTranslate2 models built on the fly for the tests."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

from models.marian.convert import transformers_converter

SENTENCES = [
    "the dog runs in the park", "a man rides a horse", "ein Hund läuft im Park", "ein Mann reitet ein Pferd",
    "two women sit on a bench", "zwei Frauen sitzen auf einer Bank", "the child plays with a ball",
    "das Kind spielt mit einem Ball", "a girl reads a book", "ein Mädchen liest ein Buch",
    "the boy jumps into the water", "der Junge springt ins Wasser", "people walk down the street",
    "Leute gehen die Straße entlang", "a woman sings a song", "eine Frau singt ein Lied",
    "the black dog is sleeping", "der schwarze Hund schläft", "men are working on a roof",
    "Männer arbeiten auf einem Dach", "a small bird flies over the lake", "ein kleiner Vogel fliegt über den See",
    "the old man drinks coffee", "der alte Mann trinkt Kaffee", "children are dancing at a party",
    "Kinder tanzen auf einer Party", "a cat sits in the window", "eine Katze sitzt im Fenster",
    "the band plays music on stage", "die Band spielt Musik auf der Bühne",
]  # no "cow": "▁cow" is not a piece of the model trained on them

# M2M100 "wmt21" language codes → the NLLB tokens they are renamed to for the NLLB-style directory.
M2M_TO_NLLB = {"__en__": "eng_Latn", "__ha__": "hau_Latn", "__is__": "isl_Latn", "__ja__": "jpn_Jpan",
               "__cs__": "ces_Latn", "__ru__": "rus_Cyrl", "__zh__": "zho_Hans", "__de__": "deu_Latn"}


def train_tiny_spm(path: Path, *, vocab_size: int = 60) -> Path:
    """A unigram SentencePiece model over :data:`SENTENCES`, written to ``path``."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(SENTENCES), model_writer=buf, vocab_size=vocab_size,
                                   model_type="unigram", minloglevel=2)
    path.write_bytes(buf.getvalue())
    return path


def make_tiny_m2m100(out: Path, *, seed: int = 0) -> tuple[Path, Any, Any]:
    """A random 1-layer M2M100 (d_model 16, 8 "wmt21" languages, 64 positions) converted to CTranslate2 float32.

    Returns (CTranslate2 directory with source.spm/target.spm, the torch model, its M2M100Tokenizer).
    """
    import sentencepiece as spm
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration, M2M100Tokenizer

    hf = out / "hf"
    hf.mkdir(parents=True)
    spm_path = train_tiny_spm(hf / "sentencepiece.bpe.model")
    sp = spm.SentencePieceProcessor(model_file=str(spm_path))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for p in pieces:
        vocab.setdefault(p, len(vocab))
    (hf / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tok = M2M100Tokenizer(vocab_file=str(hf / "vocab.json"), spm_file=str(spm_path), language_codes="wmt21")
    tok.save_pretrained(hf)
    vocab_size = tok.vocab_size + len(tok.lang_token_to_id) + tok.num_madeup_words  # as facebook/m2m100_418M
    cfg = M2M100Config(vocab_size=vocab_size, d_model=16, encoder_layers=1, decoder_layers=1,
                       encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                       max_position_embeddings=64, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                       encoder_layerdrop=0.0, decoder_layerdrop=0.0, init_std=1.0, pad_token_id=1, bos_token_id=0,
                       eos_token_id=2, decoder_start_token_id=2)
    torch.manual_seed(seed)
    model = M2M100ForConditionalGeneration(cfg).eval()
    model.save_pretrained(hf)
    ct2 = out / "ct2"
    transformers_converter()(str(hf)).convert(str(ct2), quantization=None, force=True)  # keeps the __xx__ tokens
    for name in ("source.spm", "target.spm"):
        shutil.copy(spm_path, ct2 / name)
    (ct2 / "simulsub.json").write_text(json.dumps({"max_source_tokens": cfg.max_position_embeddings}),
                                       encoding="utf-8")
    return ct2, model, tok


def nllb_copy(ct2_dir: Path, out: Path) -> Path:
    """A copy of an M2M100 CTranslate2 directory whose language tokens are renamed to NLLB's (``deu_Latn``)."""
    shutil.copytree(ct2_dir, out)
    vocab_file = out / "shared_vocabulary.json"
    tokens = json.loads(vocab_file.read_text(encoding="utf-8"))
    vocab_file.write_text(json.dumps([M2M_TO_NLLB.get(t, t) for t in tokens], ensure_ascii=False), encoding="utf-8")
    return out
