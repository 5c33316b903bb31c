"""silero-vad (v5/v6 ONNX) with onnxruntime: speech probability per 32 ms frame of 16 kHz audio.

The model file comes from the ``silero-vad`` wheel (``silero_vad/data/silero_vad.onnx``), located without
importing the package (its ``__init__`` imports torch). Install it with ``pip install --no-deps silero-vad``
(``make setup`` does) or pass the path of a ``silero_vad.onnx`` file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from models.onnx_session import open_session
from streaming.errors import ModelDirError
from streaming.types import SAMPLE_RATE

FRAME_SAMPLES = 512
"""Samples per frame at 16 kHz (32 ms), the size the model was trained on."""
CONTEXT_SAMPLES = 64
"""Samples of the previous frame prepended to each frame (the model's receptive context)."""
FRAME_MS = FRAME_SAMPLES * 1000 // SAMPLE_RATE


class VadModelError(ModelDirError, RuntimeError):
    """The silero-vad ONNX model cannot be found or loaded."""


def default_model_path() -> Path:
    """``silero_vad/data/silero_vad.onnx`` of the installed wheel."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VadModelError("silero-vad is not installed: pip install --no-deps silero-vad (or pass a model path)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise VadModelError(f"{path} is missing from the silero-vad package")
    return path


class SileroVad:
    """Stateful frame classifier: ``prob(frame)`` for consecutive 512-sample frames of one stream."""

    frame_samples = FRAME_SAMPLES

    def __init__(self, model_path: Path | str | None = None, *, threads: int = 1) -> None:
        """Load ``model_path`` (None: the ``silero-vad`` wheel's file); :class:`VadModelError` when it cannot be."""
        path = Path(model_path) if model_path else default_model_path()
        try:
            # always the CPU: one 32 ms frame per call, a GPU round trip would cost more than the model computes
            self.session = open_session(path, threads=threads, device="cpu")
        except ModelDirError as e:
            raise VadModelError(f"silero-vad model: {e}") from None
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self.reset()

    def fork(self) -> SileroVad:
        """A classifier for another stream: the same ONNX session, its own recurrent state."""
        other = object.__new__(SileroVad)
        other.session, other._sr = self.session, self._sr
        other.reset()
        return other

    def reset(self) -> None:
        """Forget the stream (recurrent state and context)."""
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, CONTEXT_SAMPLES), dtype=np.float32)

    def prob(self, frame: np.ndarray) -> float:
        """Speech probability of one frame: float32 samples in [-1, 1], exactly 512 of them (32 ms)."""
        if frame.shape != (FRAME_SAMPLES,):
            raise ValueError(f"a frame has {FRAME_SAMPLES} samples, got shape {frame.shape}")
        x = np.concatenate([self._context, frame.astype(np.float32)[None, :]], axis=1)
        out, self._state = self.session.run(None, {"input": x, "state": self._state, "sr": self._sr})
        self._context = x[:, -CONTEXT_SAMPLES:]
        return float(out[0, 0])
