"""The frozen Whisper encoder, run by CTranslate2 (int8 on the CPU): log-mel window → 512-dim frames, 20 ms each.

Windows are not padded to Whisper's 30 s: a window of ``T`` mel frames gives ``ceil(T / 2)`` encoder frames (at most
1500, i.e. 30 s). An :class:`EncoderLike` is anything with ``encode(mel [80, T]) -> [ceil(T/2), D]``; tests use a
small numpy stand-in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from models.asr.wparaformer.package import WhisperModelError, whisper_base_dir

MAX_MEL_FRAMES = 3000  # Whisper's 30 s window


class EncoderLike(Protocol):
    """What the recogniser needs of an encoder."""

    @property
    def dim(self) -> int: ...

    def encode(self, mel: np.ndarray) -> np.ndarray: ...


class WhisperEncoder:
    """CTranslate2's Whisper encoder over a local CTranslate2 Whisper directory (Whisper-base by default)."""

    def __init__(self, model_dir: str | Path | None = None, *, device: str = "cpu", compute_type: str | None = None,
                 threads: int = 1) -> None:
        import ctranslate2

        self.model_dir = whisper_base_dir(model_dir)
        ctype = compute_type or ("int8" if device == "cpu" else "float16")
        try:
            self.model = ctranslate2.models.Whisper(str(self.model_dir), device=device, compute_type=ctype,
                                                    intra_threads=threads, inter_threads=1)
        except (RuntimeError, ValueError) as e:
            raise WhisperModelError(f"CTranslate2 cannot load the Whisper model in {self.model_dir}: {e}") from None
        self.device = device
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.encode(np.zeros((80, 2), np.float32)).shape[1])
        return self._dim

    def encode(self, mel: np.ndarray) -> np.ndarray:
        """Encoder output ``[ceil(T / 2), D]`` float32 of one normalised log-mel window ``[80, T]`` (T ≤ 3000)."""
        import ctranslate2

        t = mel.shape[1]
        if t == 0:
            return np.zeros((0, self._dim or 512), np.float32)
        if t > MAX_MEL_FRAMES:
            raise ValueError(f"a Whisper encoder window holds at most 30 s ({MAX_MEL_FRAMES} mel frames), not {t}")
        sv = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], dtype=np.float32))
        out = np.asarray(self.model.encode(sv, to_cpu=True), dtype=np.float32)[0]
        self._dim = int(out.shape[1])
        return out


def encode_span(encoder: EncoderLike, audio: np.ndarray, start: int, end: int, *, left: int, right: int) -> np.ndarray:
    """Encoder frames ``[start, end)`` of 16 kHz ``audio`` (frame f = samples ``[320 f, 320 f + 320)``) computed
    from a window with ``left`` frames of left context and up to ``right`` frames of look-ahead, as the streaming
    recogniser does; the window's log-mel is normalised on itself."""
    from models.asr.wparaformer.features import ENCODER_HOP, log_mel

    total = audio.size // ENCODER_HOP
    win, stop = max(0, start - left), min(total, end + right)
    if end > total or start >= end:
        raise ValueError(f"frames [{start}, {end}) are not inside the {total} frames of the audio")
    enc = encoder.encode(log_mel(audio[win * ENCODER_HOP : stop * ENCODER_HOP]))
    return enc[start - win : end - win]


def encode_chunked(encoder: EncoderLike, audio: np.ndarray, *, chunk: int, left: int, right: int) -> np.ndarray:
    """All encoder frames of ``audio`` computed chunk by chunk (``chunk``/``left``/``right`` in 20 ms frames)."""
    from models.asr.wparaformer.features import ENCODER_HOP

    total = audio.size // ENCODER_HOP
    parts = [encode_span(encoder, audio, s, min(s + chunk, total), left=left, right=right)
             for s in range(0, total, chunk)]
    return np.concatenate(parts, axis=0) if parts else np.zeros((0, encoder.dim), np.float32)


def encode_whole(encoder: EncoderLike, audio: np.ndarray) -> np.ndarray:
    """Encoder frames of a whole utterance (≤ 30 s) in one window."""
    from models.asr.wparaformer.features import ENCODER_HOP, log_mel

    total = audio.size // ENCODER_HOP
    if total == 0:
        return np.zeros((0, encoder.dim), np.float32)
    return encoder.encode(log_mel(audio[: total * ENCODER_HOP]))
