"""A tiny Whisper-Paraformer head exported in the bundled format, and a numpy stand-in for the Whisper encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

STAND_IN_DIM = 16


class StandInEncoder:
    """Deterministic local 'encoder': each pair of log-mel frames → a fixed random projection (tanh), so every
    frame depends on its own 20 ms only (chunked and whole encodings agree exactly)."""

    def __init__(self, dim: int = STAND_IN_DIM, seed: int = 0) -> None:
        self.w = np.random.default_rng(seed).standard_normal((160, dim)).astype(np.float32) / 6
        self._dim = dim
        self.calls = 0

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, mel: np.ndarray) -> np.ndarray:
        self.calls += 1
        t = mel.shape[1]
        if t % 2:
            mel = np.concatenate([mel, mel[:, -1:]], axis=1)
        pairs = mel.T.reshape(-1, 160)
        return np.tanh(pairs @ self.w).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_wparaformer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """(directory, torch model): a random 32-wide head over 16-dim stand-in frames, stacked by 3."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from models.asr.paraformer.model import Paraformer, ParaformerConfig
    from models.asr.paraformer.tokenizer import train_asr_spm
    from models.asr.wparaformer.export import export_directory
    from tests.conftest import multi30k_lines

    out = tmp_path_factory.mktemp("tiny_wparaformer")
    spm = train_asr_spm(multi30k_lines("train.en", 300), out / "spm" / "tokens", vocab_size=60)
    from models.asr.paraformer.tokenizer import AsrTokenizer

    vocab = len(AsrTokenizer(spm))
    torch.manual_seed(0)
    config = ParaformerConfig(vocab_size=vocab, input_dim=3 * STAND_IN_DIM, d_model=32, heads=2, ffn_dim=64,
                              encoder_layers=1, decoder_layers=2, dropout=0.0)
    model = Paraformer(config).eval()
    with torch.no_grad():
        model.predictor.out.bias.fill_(-1.0)  # random alphas fire at a speech-like rate
    export_directory(model, out / "model", spm_model=spm, stack=3, int8_only=False)
    return out / "model", model
