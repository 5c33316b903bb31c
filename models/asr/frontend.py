"""The FunASR acoustic frontend without torch: kaldi-native-fbank log-mel fbank, LFR stacking and CMVN.

Audio is 16 kHz mono float in [-1, 1]; like FunASR it is scaled by 32768 before the fbank. Fbank frames are
25 ms windows every 10 ms (``snip_edges``: only whole windows); LFR stacks ``lfr_m`` = 7 fbank frames every
``lfr_n`` = 6, so one LFR frame covers 60 ms and has 7 × 80 = 560 values. CMVN is ``(x + shift) * scale``
with the vectors of ``am.mvn`` (Kaldi nnet text format, ``<AddShift>`` and ``<Rescale>`` components).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kaldi_native_fbank as knf
import numpy as np

from streaming.types import SAMPLE_RATE


@dataclass(frozen=True)
class FrontendOptions:
    """Feature settings (FunASR ``frontend_conf`` names). Dither is always 0: features are deterministic."""

    fs: int = SAMPLE_RATE
    window: str = "hamming"
    n_mels: int = 80
    frame_length: float = 25.0  # ms
    frame_shift: float = 10.0  # ms
    lfr_m: int = 7
    lfr_n: int = 6

    @classmethod
    def from_config(cls, conf: dict[str, Any] | None) -> FrontendOptions:
        """Read FunASR's ``frontend_conf`` mapping; unknown keys (``dither``, ``cmvn_file``, ...) are ignored."""
        conf = conf or {}
        d = cls()
        return cls(
            fs=int(conf.get("fs", d.fs)),
            window=str(conf.get("window", d.window)),
            n_mels=int(conf.get("n_mels", d.n_mels)),
            frame_length=float(conf.get("frame_length", d.frame_length)),
            frame_shift=float(conf.get("frame_shift", d.frame_shift)),
            lfr_m=int(conf.get("lfr_m", d.lfr_m)),
            lfr_n=int(conf.get("lfr_n", d.lfr_n)),
        )

    def to_config(self) -> dict[str, Any]:
        return {
            "fs": self.fs, "window": self.window, "n_mels": self.n_mels, "frame_length": self.frame_length,
            "frame_shift": self.frame_shift, "lfr_m": self.lfr_m, "lfr_n": self.lfr_n, "dither": 0.0,
        }

    @property
    def feature_dim(self) -> int:
        """Values per LFR frame (560 for 80 mels and m = 7)."""
        return self.n_mels * self.lfr_m

    @property
    def lfr_frame_ms(self) -> float:
        """Audio per LFR frame in ms (60 for n = 6 and 10 ms shift)."""
        return self.frame_shift * self.lfr_n

    def knf_options(self) -> knf.FbankOptions:
        """kaldi-native-fbank options with every field this frontend depends on set explicitly."""
        o = knf.FbankOptions()
        o.frame_opts.samp_freq = float(self.fs)
        o.frame_opts.frame_length_ms = self.frame_length
        o.frame_opts.frame_shift_ms = self.frame_shift
        o.frame_opts.window_type = self.window
        o.frame_opts.dither = 0.0
        o.frame_opts.snip_edges = True
        o.frame_opts.preemph_coeff = 0.97
        o.frame_opts.remove_dc_offset = True
        o.frame_opts.round_to_power_of_two = True
        o.mel_opts.num_bins = self.n_mels
        o.mel_opts.low_freq = 20.0
        o.mel_opts.high_freq = 0.0
        o.energy_floor = 0.0
        o.use_energy = False
        o.use_log_fbank = True
        o.use_power = True
        return o


def fbank(audio: np.ndarray, opts: FrontendOptions) -> np.ndarray:
    """Log-mel fbank ``[frames, n_mels]`` float32 of 16 kHz float audio (scaled by 32768 inside)."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    fb = knf.OnlineFbank(opts.knf_options())
    fb.accept_waveform(float(opts.fs), (audio * 32768.0).tolist())
    fb.input_finished()
    n = fb.num_frames_ready
    if n == 0:
        return np.zeros((0, opts.n_mels), dtype=np.float32)
    return np.array([fb.get_frame(i) for i in range(n)], dtype=np.float32)


def lfr_rows(feats: np.ndarray, first: int, stop: int, m: int, n: int) -> np.ndarray:
    """LFR rows ``first ≤ i < stop`` of fbank ``feats`` ``[T, D]`` → ``[stop - first, m*D]``.

    Row ``i`` stacks fbank frames ``i*n - (m-1)//2 ... i*n - (m-1)//2 + m - 1`` clamped to ``[0, T-1]``: the
    first frame is repeated ``(m-1)//2`` times on the left and the last frame fills the right end, as FunASR's
    ``apply_lfr`` does.
    """
    left = (m - 1) // 2
    starts = np.arange(first, stop) * n - left
    idx = np.clip(starts[:, None] + np.arange(m)[None, :], 0, feats.shape[0] - 1)
    return feats[idx].reshape(stop - first, -1)


def lfr_count(num_frames: int, n: int) -> int:
    """LFR frames for ``num_frames`` fbank frames at the end of input: ``ceil(T / n)``."""
    return math.ceil(num_frames / n) if num_frames > 0 else 0


def lfr_ready(num_frames: int, m: int, n: int) -> int:
    """LFR frames computable from ``num_frames`` fbank frames while more audio may still come (no right padding)."""
    left = (m - 1) // 2
    if num_frames + left < m:
        return 0
    return min((num_frames + left - m) // n + 1, lfr_count(num_frames, n))


def apply_lfr(feats: np.ndarray, m: int, n: int) -> np.ndarray:
    """Low frame rate stacking of a whole utterance: ``[T, D]`` → ``[ceil(T/n), m*D]`` float32."""
    count = lfr_count(feats.shape[0], n)
    if count == 0:
        return np.zeros((0, feats.shape[1] * m), dtype=np.float32)
    return lfr_rows(feats, 0, count, m, n).astype(np.float32)


@dataclass(frozen=True)
class Cmvn:
    """Global CMVN: ``(x + shift) * scale`` per feature dimension (FunASR ``am.mvn``)."""

    shift: np.ndarray
    scale: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        if x.shape[-1] != self.shift.shape[0]:
            raise ValueError(f"features have {x.shape[-1]} dims but am.mvn has {self.shift.shape[0]}")
        return ((x + self.shift) * self.scale).astype(np.float32)

    @classmethod
    def identity(cls, dim: int) -> Cmvn:
        return cls(np.zeros(dim, dtype=np.float32), np.ones(dim, dtype=np.float32))

    @classmethod
    def from_stats(cls, mean: np.ndarray, std: np.ndarray, *, floor: float = 1e-3) -> Cmvn:
        return cls((-mean).astype(np.float32), (1.0 / np.maximum(std, floor)).astype(np.float32))


def read_am_mvn(path: Path) -> Cmvn:
    """Parse Kaldi nnet text ``am.mvn``: the vector after ``<AddShift>`` and after ``<Rescale>``.

    Each vector sits on the line after its component tag as ``<LearnRateCoef> 0 [ v1 v2 ... ]``.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    vectors: dict[str, np.ndarray] = {}
    for i, line in enumerate(lines):
        parts = line.split()
        if not parts or parts[0] not in ("<AddShift>", "<Rescale>"):
            continue
        text = " ".join(lines[i + 1 : i + 3]) if i + 1 < len(lines) else ""
        if "[" not in text or "]" not in text:
            raise ValueError(f"{path}: no [ ... ] vector after {parts[0]} on line {i + 1}")
        body = text[text.index("[") + 1 : text.index("]")]
        vectors[parts[0]] = np.array([float(v) for v in body.split()], dtype=np.float32)
    if "<AddShift>" not in vectors or "<Rescale>" not in vectors:
        raise ValueError(f"{path}: expected <AddShift> and <Rescale> components (Kaldi nnet text format)")
    shift, scale = vectors["<AddShift>"], vectors["<Rescale>"]
    if shift.shape != scale.shape:
        raise ValueError(f"{path}: <AddShift> has {shift.shape[0]} values but <Rescale> has {scale.shape[0]}")
    return Cmvn(shift, scale)


def write_am_mvn(cmvn: Cmvn, path: Path) -> None:
    """Write ``am.mvn`` in the Kaldi nnet text format FunASR reads."""
    dim = cmvn.shift.shape[0]

    def vec(v: np.ndarray) -> str:
        return " ".join(f"{float(x):.8g}" for x in v)

    text = (
        f"<Nnet>\n<Splice> {dim} {dim}\n[ 0 ]\n"
        f"<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {vec(cmvn.shift)} ]\n"
        f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {vec(cmvn.scale)} ]\n</Nnet>\n"
    )
    path.write_text(text, encoding="utf-8")


class Frontend:
    """Whole-utterance features: fbank → LFR → CMVN, ``[frames, feature_dim]`` float32."""

    def __init__(self, opts: FrontendOptions, cmvn: Cmvn | None = None) -> None:
        self.opts = opts
        self.cmvn = cmvn

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """Features of 16 kHz float audio; one row per 60 ms LFR frame."""
        feats = apply_lfr(fbank(audio, self.opts), self.opts.lfr_m, self.opts.lfr_n)
        return self.cmvn.apply(feats) if self.cmvn is not None else feats


class StreamingFrontend:
    """Incremental features for one segment: the same rows as :class:`Frontend` on the concatenated audio.

    ``accept`` returns the LFR rows that no later audio can change; ``finish`` returns the right-padded rest.
    """

    def __init__(self, opts: FrontendOptions, cmvn: Cmvn | None = None) -> None:
        self.opts = opts
        self.cmvn = cmvn
        self._fbank = knf.OnlineFbank(opts.knf_options())
        self._frames = np.zeros((0, opts.n_mels), dtype=np.float32)  # capacity grows by doubling
        self._count = 0  # fbank frames pulled into ``_frames``
        self._emitted = 0

    def _pull(self) -> None:
        ready = self._fbank.num_frames_ready
        if ready > self._frames.shape[0]:  # amortised O(1) per frame: a segment's frames are copied O(log T) times
            grown = np.zeros((max(ready, 2 * self._frames.shape[0], 64), self._frames.shape[1]), dtype=np.float32)
            grown[: self._count] = self._frames[: self._count]
            self._frames = grown
        for i in range(self._count, ready):
            self._frames[i] = self._fbank.get_frame(i)
        self._count = ready

    def _rows(self, upto: int) -> np.ndarray:
        o = self.opts
        if upto <= self._emitted:
            return np.zeros((0, o.feature_dim), dtype=np.float32)
        # only the rows asked for are gathered: the cost of a call does not grow with the segment
        rows = lfr_rows(self._frames[: self._count], self._emitted, upto, o.lfr_m, o.lfr_n)
        self._emitted = upto
        rows = rows.astype(np.float32)
        return self.cmvn.apply(rows) if self.cmvn is not None else rows

    def accept(self, audio: np.ndarray) -> np.ndarray:
        """Add 16 kHz float audio; returns the new final LFR rows ``[k, feature_dim]``."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if audio.size:
            self._fbank.accept_waveform(float(self.opts.fs), (audio * 32768.0).tolist())
        self._pull()
        return self._rows(lfr_ready(self._count, self.opts.lfr_m, self.opts.lfr_n))

    def finish(self) -> np.ndarray:
        """End of segment: the remaining rows (the last ones padded with the final fbank frame)."""
        self._fbank.input_finished()
        self._pull()
        return self._rows(lfr_count(self._count, self.opts.lfr_n))
