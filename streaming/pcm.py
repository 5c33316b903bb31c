"""PCM sample conversions shared by every audio edge (I/O-free, numpy only).

- :class:`Pcm16Decoder`: 16-bit little-endian PCM bytes (a socket's frames, a pipe's reads) → float32 samples in
  [-1, 1) (÷ 32768), carrying an odd trailing byte over to the next call, so frames may split a sample anywhere.
- :func:`encode_pcm16`: the inverse (× 32768, rounded and clipped), so audio that came from 16-bit PCM crosses
  a socket bit-exact.
- :func:`to_float32_mono`: an int16 / int32 / uint8 / float array of shape ``[n]`` or ``[n, channels]`` (what
  Gradio and most audio libraries hand out) → float32 mono at the same sample rate.

None of these resample: the drivers resample to 16 kHz (soxr) where the input rate differs.
"""

from __future__ import annotations

import numpy as np

PCM16_SCALE = 32768.0  # 2**15: int16 → [-1, 1)


class Pcm16Decoder:
    """Signed 16-bit little-endian mono PCM bytes → float32 samples, one stream's worth of calls.

    A call with an odd number of bytes (counting the byte carried from the previous call) decodes every whole
    sample and keeps the last byte for the next call; :attr:`pending` says how many bytes (0 or 1) wait.
    """

    def __init__(self) -> None:
        self._odd = b""

    @property
    def pending(self) -> int:
        """Bytes (0 or 1) waiting for the next call to complete their sample."""
        return len(self._odd)

    def decode(self, data: bytes) -> np.ndarray:
        """The whole samples of ``self``'s carried byte + ``data`` as float32 in [-1, 1) (``len // 2`` samples)."""
        data = self._odd + data
        usable = len(data) - len(data) % 2
        self._odd = data[usable:]
        return np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / PCM16_SCALE

    def reset(self) -> None:
        """Drop a carried byte (a new stream starts)."""
        self._odd = b""


def encode_pcm16(samples: np.ndarray) -> bytes:
    """float32 samples in [-1, 1] → 16-bit little-endian PCM bytes (× 32768, rounded, clipped to int16)."""
    return np.clip(np.round(samples * PCM16_SCALE), -32768, 32767).astype("<i2").tobytes()


def to_float32_mono(data: np.ndarray) -> np.ndarray:
    """An audio array of shape ``[n]`` or ``[n, channels]`` → float32 mono ``[n]``, same sample rate.

    Signed integers are divided by 2**(bits-1) (int16 ÷ 32768), unsigned ones (8-bit WAV) centred on their
    midpoint (``(x - 128) / 128``), floats kept as they are; channels are averaged.
    """
    x = np.asarray(data)
    if x.dtype.kind == "i":
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    elif x.dtype.kind == "u":
        x = (x.astype(np.float32) - 128.0) / 128.0
    x = x.astype(np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    return x
