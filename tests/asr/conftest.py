"""Fixtures for the ASR tests: a tiny random Paraformer exported in our ONNX directory format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

TINY_TOKENS = ["<blank>", "<s>", "</s>", "<unk>"] + [f"▁w{i}" for i in range(20)] + [f"x{i}" for i in range(8)]


def tiny_model(seed: int = 0) -> Any:
    """A 2-layer, 32-wide Paraformer with random weights over :data:`TINY_TOKENS`, in eval mode.

    The predictor bias is raised so that random alphas fire tokens at a realistic rate.
    """
    torch = pytest.importorskip("torch")
    from models.paraformer.model import Paraformer, ParaformerConfig

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
    from models.asr.tokens import TokenList
    from models.paraformer.export import export_directory

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
