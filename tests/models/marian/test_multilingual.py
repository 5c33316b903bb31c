"""M2M100/NLLB CTranslate2 models: source/target language tokens are set, forced and stripped."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from models.marian.runtime import (
    CT2Translator,
    DecodeOptions,
    LanguageError,
    LanguageTokens,
    detect_language_tokens,
    read_vocabulary,
)
from tests.models.marian.tiny_models import M2M_TO_NLLB, make_tiny_m2m100, nllb_copy

torch = pytest.importorskip("torch")

SOURCES = ["a dog runs", "a cat sits in the window", "the old man drinks coffee"]
GREEDY = DecodeOptions(beam_size=1, max_decoding_length=10)


@pytest.fixture(scope="module")
def m2m(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    return make_tiny_m2m100(tmp_path_factory.mktemp("tiny-m2m100"))


@pytest.fixture(scope="module")
def nllb_dir(m2m: tuple[Path, Any, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return nllb_copy(m2m[0], tmp_path_factory.mktemp("tiny-nllb") / "ct2")


def _clean(text: str, lang_tokens: frozenset[str]) -> None:
    assert "▁" not in text
    assert not any(t in text for t in lang_tokens)


def test_m2m100_source_format_matches_the_hf_tokenizer(m2m: tuple[Path, Any, Any]) -> None:
    ct2_dir, _, tok = m2m
    tr = CT2Translator(ct2_dir, source_lang="en", target_lang="de")
    assert tr.multilingual and (tr.source_lang_token, tr.target_lang_token) == ("__en__", "__de__")
    tok.src_lang = "en"
    for s in SOURCES:
        assert tr.encode_source(s) == tok.convert_ids_to_tokens(tok(s)["input_ids"])  # [__en__] + pieces + </s>


def test_m2m100_output_starts_with_the_target_language_token(m2m: tuple[Path, Any, Any]) -> None:
    ct2_dir, model, tok = m2m
    tr = CT2Translator(ct2_dir, source_lang="en", target_lang="de")
    raw = tr.translate_pieces([tr.encode_source(s) for s in SOURCES], GREEDY, keep_language_token=True)
    assert all(h[0] == "__de__" for h in raw)
    vocab = read_vocabulary(ct2_dir, "target")  # CTranslate2's token ids are transformers' ids
    tok.src_lang = "en"
    for s, h in zip(SOURCES, raw, strict=True):  # the same greedy search as transformers with forced_bos
        ids = torch.tensor([tok(s)["input_ids"]])
        gen = model.generate(input_ids=ids, num_beams=1, do_sample=False, max_new_tokens=len(h),
                             forced_bos_token_id=tok.get_lang_id("de"), decoder_start_token_id=2,
                             eos_token_id=2, pad_token_id=1)
        assert [vocab[int(i)] for i in gen[0, 1:] if int(i) != 2] == h
    stripped = tr.translate_pieces([tr.encode_source(s) for s in SOURCES], GREEDY)
    assert stripped == [h[1:] for h in raw]
    for text in tr.translate(SOURCES, GREEDY):
        _clean(text, tr.language_tokens)


def test_target_language_is_controlled(m2m: tuple[Path, Any, Any]) -> None:
    de = CT2Translator(m2m[0], source_lang="en", target_lang="de")
    ru = CT2Translator(m2m[0], source_lang="en", target_lang="ru")
    raw_ru = ru.translate_pieces([ru.encode_source(s) for s in SOURCES], GREEDY, keep_language_token=True)
    assert all(h[0] == "__ru__" for h in raw_ru)
    assert de.translate(SOURCES, GREEDY) != ru.translate(SOURCES, GREEDY)


def test_languages_from_simulsub_json_and_constructor_overrides(m2m: tuple[Path, Any, Any], tmp_path: Path) -> None:
    model_dir = tmp_path / "m2m"
    shutil.copytree(m2m[0], model_dir)
    meta = json.loads((model_dir / "simulsub.json").read_text())
    (model_dir / "simulsub.json").write_text(json.dumps({**meta, "source_lang": "ru", "target_lang": "cs"}))
    tr = CT2Translator(model_dir)
    assert (tr.source_lang_token, tr.target_lang_token) == ("__ru__", "__cs__")
    assert tr.encode_source("a dog")[0] == "__ru__"
    tr = CT2Translator(model_dir, target_lang="__de__")
    assert (tr.source_lang_token, tr.target_lang_token) == ("__ru__", "__de__")
    (model_dir / "simulsub.json").write_text(json.dumps(meta))
    assert CT2Translator(model_dir).target_lang_token == "__de__"  # the app's default pair, en -> de


def test_unknown_language_lists_the_available_ones(m2m: tuple[Path, Any, Any], nllb_dir: Path) -> None:
    with pytest.raises(LanguageError, match=r"'fr'.*M2M100.*available: .*__de__"):
        CT2Translator(m2m[0], source_lang="en", target_lang="fr")
    with pytest.raises(LanguageError, match=r"'xx'.*NLLB.*available: .*deu_Latn"):
        CT2Translator(nllb_dir, source_lang="xx", target_lang="de")


def test_nllb_language_tokens(m2m: tuple[Path, Any, Any], nllb_dir: Path) -> None:
    tr = CT2Translator(nllb_dir, source_lang="en", target_lang="de")
    assert (tr.source_lang_token, tr.target_lang_token) == ("eng_Latn", "deu_Latn")
    assert tr.encode_source("a dog runs")[0] == "eng_Latn" and tr.encode_source("a dog runs")[-1] == "</s>"
    raw = tr.translate_pieces([tr.encode_source(s) for s in SOURCES], GREEDY, keep_language_token=True)
    assert all(h[0] == "deu_Latn" for h in raw)
    texts = tr.translate(SOURCES, GREEDY)
    for text in texts:
        _clean(text, frozenset(M2M_TO_NLLB.values()))
    same_weights = CT2Translator(m2m[0], source_lang="en", target_lang="de")
    assert texts == same_weights.translate(SOURCES, GREEDY)
    assert CT2Translator(nllb_dir, source_lang="eng", target_lang="deu_Latn").target_lang_token == "deu_Latn"


def test_prefixes_come_after_the_language_token(m2m: tuple[Path, Any, Any]) -> None:
    tr = CT2Translator(m2m[0], source_lang="en", target_lang="de")
    src = tr.encode_source(SOURCES[0])
    forced = tr.translate_pieces([src], GREEDY, [["▁ein", "k"]], keep_language_token=True)[0]
    assert forced[:3] == ["__de__", "▁ein", "k"]
    assert tr.translate_sentence(SOURCES[0], beam_size=1, target_prefix="ein").startswith("ein")
    # CTranslate2 only biases the whole prefix, language token included: a weak bias can lose the language,
    # and the runtime then forces the language token alone
    weak = DecodeOptions(beam_size=2, max_decoding_length=8, prefix_bias_beta=0.01)
    plain = tr.translator.translate_batch([src], target_prefix=[["__de__", "▁ein"]], prefix_bias_beta=0.01,
                                          beam_size=2, max_decoding_length=9)[0].hypotheses[0]
    assert plain[0] != "__de__"  # what happens without the fallback
    assert tr.translate_pieces([src], weak, [["▁ein"]], keep_language_token=True)[0][0] == "__de__"
    _clean(tr.translate_sentence(SOURCES[0], beam_size=2, target_prefix="ein", prefix_bias_beta=0.01),
           tr.language_tokens)


def test_continue_prefix_counts_only_target_pieces(m2m: tuple[Path, Any, Any]) -> None:
    tr = CT2Translator(m2m[0], source_lang="en", target_lang="de")
    for s in SOURCES:
        full = tr.translate_pieces([tr.encode_source(s)], GREEDY)[0]
        text, ended = tr.continue_prefix(s, "", max_new_tokens=3)
        assert text == tr.decode_target(full[:3]) and not ended
        text, _ = tr.continue_prefix(s, "ein", max_new_tokens=2)
        assert text.startswith("ein")
        _clean(text, tr.language_tokens)


def test_bilingual_models_are_unchanged(tiny_marian_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    tr = CT2Translator(tiny_marian_dir)
    assert not tr.multilingual and tr.source_lang_token is None
    assert detect_language_tokens(read_vocabulary(tiny_marian_dir, "target")) is None
    assert tr.encode_source("A dog.") == [*tr.source_sp.encode("A dog.", out_type=str), "</s>"]
    with caplog.at_level(logging.WARNING, logger="models.marian.runtime"):
        with_langs = CT2Translator(tiny_marian_dir, source_lang="en", target_lang="de")
    assert "no language tokens" in caplog.text
    src = ["A dog runs in the park.", "Two men are working."]
    assert with_langs.translate(src, GREEDY) == tr.translate(src, GREEDY)


def test_language_resolution() -> None:
    nllb = LanguageTokens("nllb", frozenset({"eng_Latn", "deu_Latn", "zho_Hans", "zho_Hant", "srp_Cyrl", "srp_Latn"}))
    assert nllb.resolve("en") == nllb.resolve("EN-us") == nllb.resolve("eng") == nllb.resolve("__en__") == "eng_Latn"
    assert nllb.resolve("zh") == nllb.resolve("zho") == "zho_Hans"
    assert nllb.resolve("zho_Hant") == "zho_Hant"
    assert nllb.resolve("sr") == nllb.resolve("srp") == "srp_Cyrl"
    with pytest.raises(LanguageError, match="ambiguous"):
        LanguageTokens("nllb", frozenset({"eng_Latn", "pan_Guru", "pan_Arab"})).resolve("pan")
    m2m = LanguageTokens("m2m100", frozenset({"__en__", "__de__", "__ast__"}))
    assert m2m.resolve("de") == m2m.resolve("deu_Latn") == m2m.resolve("deu") == "__de__"
    assert m2m.resolve("ast") == "__ast__"
    assert detect_language_tokens(["<s>", "▁der", "__init", "abc_Defg"]) is None
    found = detect_language_tokens(["<s>", "▁der", "eng_Latn", "deu_Latn"])
    assert found is not None and found.style == "nllb"
