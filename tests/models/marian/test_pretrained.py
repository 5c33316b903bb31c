"""The bundled default en→de model loads without torch and translates Multi30k-like text well."""

from __future__ import annotations

import json

from app.profiles import DEFAULT_MT_MODEL
from models.marian.runtime import CT2Translator, DecodeOptions
from streaming.metrics.quality import corpus_bleu
from tests.conftest import multi30k_lines


def test_bundled_model_is_int8_ctranslate2_with_card() -> None:
    meta = json.loads((DEFAULT_MT_MODEL / "simulsub.json").read_text())
    assert meta["quantization"] == "int8"
    assert (DEFAULT_MT_MODEL / "README.md").is_file()
    size_mb = sum(p.stat().st_size for p in DEFAULT_MT_MODEL.iterdir()) / 1e6
    assert size_mb < 12


def test_bundled_model_translates_validation_sentences() -> None:
    tr = CT2Translator(DEFAULT_MT_MODEL)
    src = multi30k_lines("val.en", 60)
    ref = multi30k_lines("val.de", 60)
    hyp = tr.translate(src, DecodeOptions(beam_size=2))
    assert corpus_bleu(hyp, ref) > 28.0
    assert tr.translate(["A dog runs."])[0].split()[:2] == ["Ein", "Hund"]
