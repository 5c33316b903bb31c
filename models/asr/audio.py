"""Reading audio files for ASR: soundfile decodes (wav, flac, mp3, ogg/opus), soxr resamples to 16 kHz mono."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streaming.errors import AudioError
from streaming.types import SAMPLE_RATE


def to_mono_16k(audio: np.ndarray, sample_rate: int, *, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Average channels (``[samples, channels]``) and resample to ``target_rate`` Hz; float32 in [-1, 1]."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if sample_rate != target_rate and x.size:
        import soxr

        x = soxr.resample(x, sample_rate, target_rate, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def load_audio(path: str | Path, *, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` to float32 mono at ``target_rate`` Hz (16 kHz by default)."""
    import soundfile as sf

    p = Path(path)
    if not p.is_file():
        raise AudioError(f"audio file {p} does not exist")
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError by format
        raise AudioError(f"cannot read audio file {p}: {str(e).strip() or type(e).__name__}") from None
    if data.shape[0] == 0:
        raise AudioError(f"audio file {p} has no samples")
    return to_mono_16k(data, int(rate), target_rate=target_rate)
