"""Whisper's log-mel features in numpy (80 bins, 25 ms Hann window, 10 ms hop, 16 kHz).

The same transform as Whisper's ``log_mel_spectrogram``: a centred STFT (reflect padding, n_fft 400, hop 160), the
last frame dropped, power spectrum through the Slaney mel filterbank, ``log10``, floored at 8 below the window's
maximum, then ``(x + 4) / 4``. Whisper pads every input to 30 s; here a window of ``n`` samples gives ``n // 160``
frames and no padding, which CTranslate2's encoder accepts (one encoder frame per 2 mel frames, 20 ms).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from streaming.types import SAMPLE_RATE

N_FFT = 400
HOP = 160  # samples per mel frame (10 ms)
N_MELS = 80
ENCODER_HOP = 2 * HOP  # samples per encoder frame (20 ms)
FRAME_MS = 1000.0 * HOP / SAMPLE_RATE
ENCODER_FRAME_MS = 2 * FRAME_MS


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=4)
def mel_filters(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Slaney-normalised mel filterbank ``[n_mels, n_fft // 2 + 1]`` (librosa's default, as Whisper uses)."""
    fft_freqs = np.linspace(0.0, sample_rate / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(sample_rate / 2)), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann


def log_mel_raw(audio: np.ndarray) -> np.ndarray:
    """``log10`` mel power ``[80, n // 160]`` of 16 kHz float audio, before Whisper's window normalisation."""
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    frames = x.size // HOP
    if frames == 0:
        return np.zeros((N_MELS, 0), dtype=np.float32)
    pad = N_FFT // 2
    if x.size > pad:
        padded = np.pad(x, (pad, pad), mode="reflect")
    else:  # too short to reflect: zero padding (a window this short carries no speech anyway)
        padded = np.pad(x, (pad, pad))
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(frames)[:, None]
    spec = np.fft.rfft(padded[idx] * _window()[None, :], axis=1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    mel = mel_filters() @ power.T
    return np.log10(np.maximum(mel, 1e-10)).astype(np.float32)


def normalize(log_mel: np.ndarray) -> np.ndarray:
    """Whisper's normalisation of a window of ``log10`` mel frames: floor at max − 8, then ``(x + 4) / 4``."""
    if log_mel.shape[-1] == 0:
        return log_mel.astype(np.float32)
    return ((np.maximum(log_mel, log_mel.max() - 8.0) + 4.0) / 4.0).astype(np.float32)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Whisper input features ``[80, n // 160]`` of 16 kHz float audio (one window, normalised on itself)."""
    return normalize(log_mel_raw(audio))


def stack_frames(frames: np.ndarray, k: int, *, pad: np.ndarray | None = None) -> np.ndarray:
    """Concatenate each ``k`` consecutive encoder frames ``[T, D]`` into one ``[ceil(T / k), k D]``: the head reads
    20 k ms frames. The last group is padded with zero frames (``pad``: with this ``[D]`` row instead)."""
    if k == 1:
        return frames
    t, d = frames.shape
    groups = -(-t // k)
    out = np.zeros((groups * k, d), dtype=frames.dtype)
    if pad is not None and groups * k > t:
        out[t:] = pad
    out[:t] = frames
    return out.reshape(groups, k * d)
