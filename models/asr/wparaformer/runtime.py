"""Whisper-Paraformer inference: the frozen Whisper encoder (CTranslate2) under the trained head (ONNX Runtime).

A model directory is a Paraformer directory (:mod:`models.asr.runtime`) whose graphs read Whisper encoder frames
(512-dim, 20 ms) instead of fbank: ``config.yaml`` says so with ``simulsub.input: whisper-encoder`` and pins the
encoder (``simulsub.whisper``: name, width, SHA-256 of ``model.bin``). Only the streaming halves are shipped
(``stream_encoder_quant.onnx``: frames → adapter output, CIF weights, CTC log-probs; ``stream_decoder_quant.onnx``:
parallel decoder); offline decoding runs them over the whole utterance. Decoding (beam, CTC prefix scores) is
:mod:`models.asr.decoding`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.asr.decoding import DecodeOptions
from models.asr.runtime import ModelDirError, ParaformerOnnx, read_config
from models.asr.wparaformer.encoder import EncoderLike, WhisperEncoder, encode_chunked, encode_whole
from models.asr.wparaformer.features import ENCODER_FRAME_MS, ENCODER_HOP, SAMPLE_RATE, stack_frames
from models.asr.wparaformer.package import WhisperModelError

WHISPER_INPUT = "whisper-encoder"
MAX_WINDOW_FRAMES = 1500  # 30 s of encoder frames
LONG_CHUNK, LONG_CONTEXT = 1250, 125  # offline audio over 30 s: 25 s chunks with 2.5 s of context each side


def is_whisper_paraformer_dir(model_dir: Path) -> bool:
    """True when ``model_dir/config.yaml`` declares Whisper-encoder input."""
    try:
        ours = read_config(model_dir).get("simulsub") or {}
    except ModelDirError:
        return False
    return isinstance(ours, dict) and ours.get("input") == WHISPER_INPUT


class WhisperParaformer(ParaformerOnnx):
    """The head's graphs (via :class:`ParaformerOnnx`) fed by a Whisper encoder; ``features(audio)`` are encoder
    frames ``[T, 512]``."""

    def __init__(self, model_dir: str | Path, *, encoder: EncoderLike | None = None, whisper_dir: str | Path | None
                 = None, quantized: bool = True, threads: int = 1, providers: list[str] | None = None,
                 decoding: DecodeOptions | None = None, device: str = "cpu") -> None:
        """``encoder`` replaces the CTranslate2 Whisper encoder (tests pass a small stand-in); ``whisper_dir`` is
        a local CTranslate2 Whisper directory (default: Whisper-base from the PyPI packages)."""
        model_dir = Path(model_dir)
        if not is_whisper_paraformer_dir(model_dir):
            raise ModelDirError(f"{model_dir} is not a Whisper-Paraformer directory (config.yaml lacks "
                                f"simulsub.input: {WHISPER_INPUT})")
        super().__init__(model_dir, quantized=quantized, threads=threads, providers=providers, decoding=decoding)
        ours: dict[str, Any] = read_config(model_dir).get("simulsub") or {}
        self.whisper_info: dict[str, Any] = dict(ours.get("whisper") or {})
        if encoder is None:
            try:
                encoder = WhisperEncoder(whisper_dir, device=device, threads=threads)
            except WhisperModelError as e:
                raise ModelDirError(str(e)) from None
        self.encoder = encoder
        self.stack = int(self.whisper_info.get("stack", 1) or 1)
        want = int(self.whisper_info.get("dim", 0) or 0)
        if want and encoder.dim != want:
            raise ModelDirError(f"{model_dir} was trained on {want}-dim Whisper frames, but the encoder gives "
                                f"{encoder.dim}: use the Whisper model it names ({self.whisper_info.get('name')})")

    @property
    def external_features(self) -> bool:
        return True

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def frame_ms(self) -> float:
        """Duration of one head frame (``stack`` Whisper frames of 20 ms)."""
        return ENCODER_FRAME_MS * self.stack

    def whisper_frames(self, audio: np.ndarray) -> np.ndarray:
        """Whisper encoder frames ``[T, D]`` (20 ms) of 16 kHz float audio: one window up to 30 s, longer audio in
        25 s chunks with 2.5 s of context on each side."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if audio.size // ENCODER_HOP <= MAX_WINDOW_FRAMES:
            return encode_whole(self.encoder, audio)
        return encode_chunked(self.encoder, audio, chunk=LONG_CHUNK, left=LONG_CONTEXT, right=LONG_CONTEXT)

    def features(self, audio: np.ndarray) -> np.ndarray:
        """The head's input: Whisper frames stacked by ``stack`` (``[ceil(T / stack), stack D]``)."""
        return stack_frames(self.whisper_frames(audio), self.stack)
