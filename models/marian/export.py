"""Build, average and convert Marian checkpoints: PyTorch state dicts → Hugging Face dir → CTranslate2 (int8)."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from transformers import MarianConfig, MarianMTModel

from models.export_registry import check_quantization, refuse_overwrite
from models.text.spm import write_marian_tokenizer_files

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MarianArch:
    """Transformer size. ``vocab_size`` counts the SentencePiece pieces plus ``<pad>`` (the last id)."""

    vocab_size: int
    d_model: int = 256
    encoder_layers: int = 3
    decoder_layers: int = 3
    heads: int = 4
    ffn_dim: int = 1024
    dropout: float = 0.1
    max_positions: int = 256

    @property
    def pad_id(self) -> int:
        return self.vocab_size - 1


EOS_ID = 1


def build_model(arch: MarianArch) -> MarianMTModel:
    """A randomly initialised MarianMTModel whose decoder starts from the (always zero) ``<pad>`` embedding."""
    cfg = MarianConfig(
        vocab_size=arch.vocab_size,
        decoder_vocab_size=arch.vocab_size,
        d_model=arch.d_model,
        encoder_layers=arch.encoder_layers,
        decoder_layers=arch.decoder_layers,
        encoder_attention_heads=arch.heads,
        decoder_attention_heads=arch.heads,
        encoder_ffn_dim=arch.ffn_dim,
        decoder_ffn_dim=arch.ffn_dim,
        dropout=arch.dropout,
        attention_dropout=0.0,
        activation_dropout=0.0,
        activation_function="relu",
        max_position_embeddings=arch.max_positions,
        pad_token_id=arch.pad_id,
        eos_token_id=EOS_ID,
        decoder_start_token_id=arch.pad_id,
        forced_eos_token_id=EOS_ID,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
    )
    model = MarianMTModel(cfg)
    with torch.no_grad():
        pad_embedding(model).zero_()
    return model


def pad_embedding(model: MarianMTModel) -> torch.Tensor:
    """The shared embedding row of ``<pad>`` (the last id): it must stay zero, CTranslate2 starts from it."""
    weight: torch.Tensor = model.get_input_embeddings().weight  # type: ignore[assignment]
    return weight[model.config.pad_token_id]


def average_state_dicts(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the ``model`` state dicts stored in the given training checkpoints."""
    if not paths:
        raise ValueError("no checkpoints to average")
    total: dict[str, torch.Tensor] = {}
    for p in paths:
        sd = torch.load(p, map_location="cpu", weights_only=False)["model"]
        for k, v in sd.items():
            if v.is_floating_point():
                total[k] = total.get(k, torch.zeros_like(v)) + v
            else:
                total[k] = v
    return {k: (v / len(paths) if v.is_floating_point() else v) for k, v in total.items()}


def save_hf(model: MarianMTModel, spm_model: Path, out_dir: Path) -> None:
    """Save a Hugging Face Marian directory (weights + tokenizer files) that ``ct2-transformers-converter`` reads."""
    model.save_pretrained(out_dir)
    write_marian_tokenizer_files(spm_model, out_dir, model_max_length=model.config.max_position_embeddings)


def convert_to_ct2(
    model: MarianMTModel,
    spm_model: Path,
    out_dir: Path,
    *,
    quantization: str | None = "int8",
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Convert ``model`` to a CTranslate2 directory with ``source.spm``/``target.spm`` beside it.

    The directory is what ``simulsub translate --model DIR`` loads.
    """
    import ctranslate2.converters

    card = out_dir / "README.md"
    card_text = card.read_text(encoding="utf-8") if card.is_file() else None  # the converter empties out_dir
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = Path(tmp) / "hf"
        save_hf(model, spm_model, hf_dir)
        ctranslate2.converters.TransformersConverter(str(hf_dir)).convert(
            str(out_dir), quantization=quantization, force=True
        )
        for name in ("source.spm", "target.spm"):
            shutil.copy(hf_dir / name, out_dir / name)
    meta = {"format": "simulsub-ct2-marian", "quantization": quantization, **(metadata or {})}
    (out_dir / "simulsub.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    if card_text is not None:
        card.write_text(card_text, encoding="utf-8")
    return out_dir


@dataclass
class MarianExporter:
    """A Marian model and its SentencePiece model → a CTranslate2 directory (:func:`convert_to_ct2`).

    ``quantization``: CTranslate2's weight type (``None`` keeps float32); ``metadata`` goes into
    ``simulsub.json``. ``model.bin`` marks an existing export.
    """

    model: MarianMTModel
    spm_model: Path
    metadata: dict[str, Any] = field(default_factory=dict)

    family: ClassVar[str] = "marian"
    quantizations: ClassVar[tuple[str | None, ...]] = (
        "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16", "float32", None)

    def export(self, output_dir: Path | str, *, quantization: str | None = "int8", force: bool = False) -> Path:
        """Write the CTranslate2 directory ``output_dir`` (see :class:`models.export_registry.ModelExporter`)."""
        check_quantization(self, quantization)
        out = Path(output_dir)
        refuse_overwrite(out / "model.bin", force)
        return convert_to_ct2(self.model, self.spm_model, out, quantization=quantization, metadata=self.metadata)


def arch_to_json(arch: MarianArch) -> dict[str, Any]:
    return asdict(arch)
