"""Token ids to text: SentencePiece ▁, BPE @@ joins, CJK characters, special tokens dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.asr.tokens import TokenList, join_pieces


def test_sentencepiece_pieces() -> None:
    toks = TokenList(["<blank>", "<s>", "</s>", "<unk>", "▁two", "▁dog", "s", "▁run"])
    assert (toks.blank_id, toks.sos_id, toks.eos_id, toks.unk_id) == (0, 1, 2, 3)
    assert toks.to_text([1, 4, 5, 6, 3, 7, 2, 0]) == "two dogs run"


def test_bpe_joins_and_cjk() -> None:
    assert join_pieces(["hel@@", "lo", "wor@@", "ld"], spm=False) == "hello world"
    assert join_pieces(["你", "好", "hel@@", "lo", "世", "界"], spm=False) == "你好 hello 世界"
    toks = TokenList(["<blank>", "<s>", "</s>", "a@@", "b", "c", "<unk>"])
    assert toks.to_text([3, 4, 6, 5, 2]) == "ab c"


def test_load_tokens_json_txt_and_config(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "tokens.json").write_text(json.dumps(["<blank>", "▁x"]))
    assert TokenList.load(tmp_path / "a").tokens == ["<blank>", "▁x"]
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "tokens.txt").write_text("<blank> 0\n<s> 1\nhi 2\n")
    assert TokenList.load(tmp_path / "b").tokens == ["<blank>", "<s>", "hi"]
    (tmp_path / "c").mkdir()
    assert TokenList.load(tmp_path / "c", {"token_list": ["<blank>", "z"]}).tokens == ["<blank>", "z"]
    with pytest.raises(FileNotFoundError):
        TokenList.load(tmp_path / "c")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "tokens.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(ValueError):
        TokenList.load(tmp_path / "d")


def test_asr_text_normalisation_and_spm(tmp_path: Path) -> None:
    pytest.importorskip("sentencepiece")
    from models.asr.paraformer.tokenizer import AsrTokenizer, normalize_transcript, train_asr_spm

    assert normalize_transcript("Two young, White males -- outside!") == "two young white males outside"
    assert normalize_transcript("A man's T-shirt 'red'") == "a man's t-shirt red"
    texts = ["a dog runs in the park", "two men are playing soccer", "a woman in a red shirt"] * 30
    model = train_asr_spm(texts, tmp_path / "tok", vocab_size=40)
    tok = AsrTokenizer(model)
    assert tok.token_list.tokens[:4] == ["<blank>", "<s>", "</s>", "<unk>"]
    ids = tok.encode("A dog runs, in the PARK.")
    assert min(ids) >= 4
    assert tok.decode(ids) == "a dog runs in the park"
