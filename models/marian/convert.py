"""Hugging Face translation models (Marian/OPUS-MT, M2M100, NLLB) → the CTranslate2 directory our runtime loads.

The output is what :class:`models.marian.runtime.CT2Translator` expects: CTranslate2's ``model.bin`` and
vocabulary, ``source.spm`` / ``target.spm`` (Marian ships both; M2M100/NLLB share one SentencePiece model), and
``simulsub.json`` with the model's position limit (``max_source_tokens``) and where it came from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from streaming.errors import ModelBuildError

TRANSLATION_TYPES = ("marian", "m2m_100")  # config.json model_type (NLLB is an m2m_100 with its own tokenizer)
SHARED_SPM = ("sentencepiece.bpe.model", "spm.model", "sentencepiece.model")


class ConversionError(ModelBuildError):
    """The directory is not a Hugging Face translation model we can convert."""


def hf_model_type(model_dir: Path) -> str | None:
    """``model_type`` of a Hugging Face model directory's ``config.json`` (None when it has none)."""
    try:
        data = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("model_type") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def is_hf_translation_dir(model_dir: Path) -> bool:
    has_weights = any((model_dir / f).is_file() for f in ("model.safetensors", "pytorch_model.bin"))
    return has_weights and hf_model_type(model_dir) in TRANSLATION_TYPES


def _spm_files(hf_dir: Path) -> tuple[Path, Path]:
    src, tgt = hf_dir / "source.spm", hf_dir / "target.spm"
    if src.is_file() and tgt.is_file():
        return src, tgt
    for name in SHARED_SPM:
        if (hf_dir / name).is_file():
            return hf_dir / name, hf_dir / name
    raise ConversionError(f"{hf_dir} has no SentencePiece model (source.spm/target.spm, or one of "
                          f"{', '.join(SHARED_SPM)}): copy the tokenizer files next to the weights")


def transformers_converter() -> Any:
    """CTranslate2's Transformers converter, with M2M100's language tokens kept in the vocabulary.

    Under transformers 5 the M2M100 tokenizer no longer lists its ``__xx__`` language tokens in ``get_vocab()``;
    CTranslate2 4.8 reads the vocabulary from there and would write filler tokens in their place, losing the
    model's language control.
    """
    import ctranslate2.converters

    class _WithLanguages:
        def __init__(self, tokenizer: Any) -> None:
            self._tok = tokenizer

        def __getattr__(self, name: str) -> Any:
            return getattr(self._tok, name)

        def get_vocab(self) -> dict[str, int]:
            return {**self._tok.get_vocab(), **(getattr(self._tok, "lang_token_to_id", None) or {})}

    class Converter(ctranslate2.converters.TransformersConverter):
        def load_tokenizer(self, tokenizer_class: Any, model_name_or_path: str, **kwargs: Any) -> Any:
            return _WithLanguages(super().load_tokenizer(tokenizer_class, model_name_or_path, **kwargs))

    return Converter


def convert_hf_translation(hf_dir: Path, out_dir: Path, *, quantization: str | None = "int8",
                           force: bool = False) -> Path:
    """Convert ``hf_dir`` into ``out_dir`` (``quantization``: CTranslate2's, e.g. int8, or None for float32)."""
    if not is_hf_translation_dir(hf_dir):
        raise ConversionError(f"{hf_dir} is not a Hugging Face translation model (config.json with model_type "
                              f"{' or '.join(TRANSLATION_TYPES)} and its weights)")
    src_spm, tgt_spm = _spm_files(hf_dir)
    try:
        transformers_converter()(str(hf_dir)).convert(str(out_dir), quantization=quantization, force=force)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise ConversionError(f"CTranslate2 could not convert {hf_dir}: {e}") from None
    shutil.copy(src_spm, out_dir / "source.spm")
    shutil.copy(tgt_spm, out_dir / "target.spm")
    config = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    meta = {"converted_from": str(hf_dir), "model_type": config.get("model_type"), "quantization": quantization}
    if isinstance(config.get("max_position_embeddings"), int):
        meta["max_source_tokens"] = config["max_position_embeddings"]
    (out_dir / "simulsub.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return out_dir
