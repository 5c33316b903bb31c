"""Shared fixtures: tiny models built on the fly in the same formats as the real ones."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
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


# -- speech: a tiny random Paraformer in our ONNX directory format, test audio, shared speech models -----------
TINY_TOKENS = ["<blank>", "<s>", "</s>", "<unk>"] + [f"▁w{i}" for i in range(20)] + [f"x{i}" for i in range(8)]


def tiny_model(seed: int = 0) -> Any:
    """A 2-layer, 32-wide Paraformer with random weights over :data:`TINY_TOKENS`, in eval mode.

    The predictor bias is raised so that random alphas fire tokens at a realistic rate.
    """
    torch = pytest.importorskip("torch")
    from models.asr.paraformer.model import Paraformer, ParaformerConfig

    torch.manual_seed(seed)
    config = ParaformerConfig(vocab_size=len(TINY_TOKENS), d_model=32, heads=2, ffn_dim=64, encoder_layers=2,
                              decoder_layers=2, dropout=0.0)
    model = Paraformer(config).eval()
    with torch.no_grad():
        model.predictor.out.bias.fill_(-1.0)
    return model


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """(directory, torch model): our full export (float + int8, streaming halves, config, am.mvn, tokens)."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from models.asr.frontend import Cmvn, FrontendOptions
    from models.asr.paraformer.export import export_directory
    from models.asr.tokens import TokenList

    model = tiny_model()
    out = tmp_path_factory.mktemp("tiny_paraformer")
    rng = np.random.default_rng(0)
    # a CMVN roughly matching log-mel fbank statistics of speech-like audio
    cmvn = Cmvn.from_stats(rng.uniform(5, 10, 560).astype(np.float32), rng.uniform(2, 4, 560).astype(np.float32))
    export_directory(model, out, frontend=FrontendOptions(), cmvn=cmvn, tokens=TokenList(list(TINY_TOKENS)))
    return out, model


def chirp(seconds: float, *, seed: int = 0, rate: int = 16000) -> np.ndarray:
    """Deterministic speech-like test audio: a few gliding harmonics with amplitude bursts, plus weak noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 60 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 6))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    y = 0.2 * env * x + 0.01 * rng.standard_normal(t.size)
    return y.astype(np.float32)


@pytest.fixture(scope="session")
def models(tiny_export: tuple[Path, Any]) -> Any:
    """Shared speech models for the server tests: silero VAD, the tiny ASR and the bundled MT model (greedy)."""
    pytest.importorskip("silero_vad", reason="silero-vad is installed by make setup")
    from app.policies import PolicyConfig
    from app.speech_session import SpeechConfig, SpeechModels

    return SpeechModels(SpeechConfig(policy=PolicyConfig(name="reta", beam=1), asr_model=tiny_export[0]))
