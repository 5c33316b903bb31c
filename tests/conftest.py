"""Shared fixtures: tiny models built on the fly in the same formats as the real ones."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from models.text.data import multi30k_dir

# hypothesis' pytest plugin imports its package at the very end of a run; CPython 3.11.7 can then fail to compile it
# ("AST constructor recursion depth mismatch") after a test provoked a RecursionError (deeply nested JSON). Imported
# here, at the start, it is compiled before any such test runs (hypothesis is not required by the suite).
with contextlib.suppress(ImportError):
    import hypothesis.internal.observability  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
MULTI30K = multi30k_dir()  # $SIMULSUB_MULTI30K, else ../shared/data/multi30k beside the checkout


def multi30k_lines(name: str, n: int) -> list[str]:
    with open(MULTI30K / name, encoding="utf-8") as f:
        return [next(f).rstrip("\n") for _ in range(n)]


def make_tiny_marian(
    out: Path, *, pieces: int, max_positions: int, layers: int = 1, quantization: str | None = "int8", seed: int = 0
) -> tuple[Path, Any, Path]:
    """A random Marian (d=32) over a small joint SentencePiece, converted to CTranslate2.

    Returns (CTranslate2 directory, the torch model, the SentencePiece model path).
    """
    import torch

    from models.marian.export import MarianArch, build_model, convert_to_ct2
    from models.text.spm import train_joint_spm

    texts = multi30k_lines("train.en", 400) + multi30k_lines("train.de", 400)
    spm_model = train_joint_spm(texts, out / "spm", vocab_size=pieces)
    torch.manual_seed(seed)
    arch = MarianArch(vocab_size=pieces + 1, d_model=32, encoder_layers=layers, decoder_layers=layers, heads=2,
                      ffn_dim=64, max_positions=max_positions)
    model = build_model(arch).eval()
    with torch.no_grad():  # input-dependent outputs for a random model
        model.final_logits_bias.normal_(0, 0.5)
    ct2_dir = convert_to_ct2(model, spm_model, out / "ct2", quantization=quantization,
                             metadata={"max_source_tokens": max_positions})
    return ct2_dir, model, spm_model


@pytest.fixture(scope="session")
def tiny_marian_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer random Marian with a 300-piece vocabulary and a 64-token limit, CTranslate2 int8."""
    return make_tiny_marian(tmp_path_factory.mktemp("tiny-marian"), pieces=300, max_positions=64)[0]
