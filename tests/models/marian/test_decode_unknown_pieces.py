"""Target pieces that target.spm does not know (OPUS-MT's shared vocabulary) decode without a literal "▁"."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sentencepiece as spm

from models.marian.runtime import CT2Translator, DecodeOptions, decode_pieces
from tests.models.marian.tiny_models import SENTENCES, train_tiny_spm


@pytest.fixture(scope="module")
def tiny_sp(tmp_path_factory: pytest.TempPathFactory) -> spm.SentencePieceProcessor:
    path = train_tiny_spm(tmp_path_factory.mktemp("spm") / "tiny.spm")
    return spm.SentencePieceProcessor(model_file=str(path))


def test_unknown_pieces_become_words(tiny_sp: spm.SentencePieceProcessor) -> None:
    assert tiny_sp.piece_to_id("▁cow") == tiny_sp.unk_id()  # a piece only a shared vocabulary has
    ein, hund = tiny_sp.encode("ein", out_type=str), tiny_sp.encode("Hund", out_type=str)
    assert all(tiny_sp.piece_to_id(p) != tiny_sp.unk_id() for p in [*ein, *hund])
    pieces = [*ein, "▁cow", "▁cow", *hund]
    assert tiny_sp.decode_pieces(pieces) == "ein▁cow▁cow Hund"  # the bug: unknown pieces kept verbatim
    assert decode_pieces(tiny_sp, pieces) == "ein cow cow Hund"
    assert decode_pieces(tiny_sp, ["▁cow", *hund]) == "cow Hund"  # no space at the very start
    assert decode_pieces(tiny_sp, ["<s>", "▁cow", *hund]) == "cow Hund"
    assert decode_pieces(tiny_sp, [*hund, "cow", "▁cow"]) == "Hundcow cow"  # no ▁: glued to the word before
    assert decode_pieces(tiny_sp, [*ein, "▁Über▁all", *hund]) == "ein Über all Hund"


def test_known_pieces_decode_as_before(tiny_sp: spm.SentencePieceProcessor) -> None:
    for text in [*SENTENCES, ""]:
        pieces = tiny_sp.encode(text, out_type=str)
        assert all(tiny_sp.piece_to_id(p) != tiny_sp.unk_id() for p in pieces)
        assert decode_pieces(tiny_sp, pieces) == tiny_sp.decode_pieces(pieces)
    # unknown characters without a boundary mark ("E", ",", ".") decode as SentencePiece does too
    pieces = tiny_sp.encode("Ein Hund, zwei Katzen.", out_type=str)
    assert decode_pieces(tiny_sp, pieces) == tiny_sp.decode_pieces(pieces) == "Ein Hund, zwei Katzen."
    with_specials = ["<s>", *tiny_sp.encode("ein Hund", out_type=str), "<unk>", "</s>"]
    assert decode_pieces(tiny_sp, with_specials) == tiny_sp.decode_pieces(with_specials)


def test_ct2_marian_with_smaller_target_spm_prints_no_boundary_marks(tiny_marian_dir: Path, tmp_path: Path) -> None:
    """A shared-vocabulary Marian whose target.spm lacks most of the pieces the model emits (as OPUS-MT)."""
    model_dir = tmp_path / "opus-like"
    shutil.copytree(tiny_marian_dir, model_dir)
    train_tiny_spm(model_dir / "target.spm")
    tr = CT2Translator(model_dir)
    sources = ["A dog runs in the park.", "Two men are working on a roof.", "A girl reads a book."]
    opts = DecodeOptions(beam_size=1, max_decoding_length=12)
    hyps = tr.translate_pieces([tr.encode_source(s) for s in sources], opts)
    unknown = [p for h in hyps for p in h if tr.target_sp.piece_to_id(p) == tr.target_sp.unk_id()]
    assert any(p.startswith("▁") for p in unknown)  # the case being tested happens
    texts = tr.translate(sources, opts)
    for h, text in zip(hyps, texts, strict=True):
        assert "▁" not in text
        assert text.split() == "".join(h).replace("▁", " ").split()  # the words the pieces spell
