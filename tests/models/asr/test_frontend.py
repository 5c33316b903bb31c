"""The FunASR frontend against reference computations: a numpy Kaldi fbank, hand-checked LFR rows, am.mvn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.asr.frontend import (
    Cmvn,
    Frontend,
    FrontendOptions,
    StreamingFrontend,
    apply_lfr,
    fbank,
    lfr_count,
    lfr_ready,
    read_am_mvn,
    write_am_mvn,
)
from tests.conftest import chirp


def kaldi_fbank_reference(audio: np.ndarray, *, rate: int = 16000, n_mels: int = 80) -> np.ndarray:
    """Kaldi's fbank written out in numpy (25 ms hamming frames every 10 ms, snip_edges, no dither,
    DC removal, pre-emphasis 0.97, 512-point power spectrum, mel banks 20 Hz – Nyquist, natural log)."""
    x = audio.astype(np.float64) * 32768.0
    length, shift, nfft = 400, 160, 512
    frames = 1 + (x.size - length) // shift
    n = np.arange(length)
    window = 0.54 - 0.46 * np.cos(2 * np.pi * n / (length - 1))

    def mel(f: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)

    lo, hi = mel(20.0), mel(rate / 2)
    delta = (hi - lo) / (n_mels + 1)
    fft_mel = mel(np.arange(nfft // 2) * rate / nfft)
    banks = np.zeros((n_mels, nfft // 2 + 1))
    for b in range(n_mels):
        left, centre, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
        up = (fft_mel - left) / (centre - left)
        down = (right - fft_mel) / (right - centre)
        w = np.where((fft_mel > left) & (fft_mel < right), np.minimum(up, down), 0.0)
        banks[b, : nfft // 2] = w
    out = np.zeros((frames, n_mels))
    for i in range(frames):
        w = x[i * shift : i * shift + length].copy()
        w -= w.mean()
        w[1:] -= 0.97 * w[:-1].copy()
        w[0] -= 0.97 * w[0]
        power = np.abs(np.fft.rfft(w * window, nfft)) ** 2
        out[i] = np.log(np.maximum(banks @ power, np.finfo(np.float32).eps))
    return out


def test_fbank_matches_numpy_kaldi_reference() -> None:
    audio = chirp(0.5, seed=1)
    ours = fbank(audio, FrontendOptions())
    ref = kaldi_fbank_reference(audio)
    assert ours.shape == ref.shape == (1 + (8000 - 400) // 160, 80)
    np.testing.assert_allclose(ours, ref, atol=2e-3, rtol=1e-4)


def test_fbank_is_deterministic_and_uses_no_dither() -> None:
    audio = chirp(0.3, seed=2)
    np.testing.assert_array_equal(fbank(audio, FrontendOptions()), fbank(audio, FrontendOptions()))
    assert fbank(np.zeros(100, np.float32), FrontendOptions()).shape == (0, 80)


def test_lfr_rows_by_hand() -> None:
    feats = np.arange(13, dtype=np.float32)[:, None] * np.array([[1.0, 10.0]], np.float32)  # row i = [i, 10 i]
    out = apply_lfr(feats, 7, 6)
    assert out.shape == (3, 14) == (lfr_count(13, 6), 7 * 2)
    first = [0, 0, 0, 0, 1, 2, 3]  # three copies of frame 0 on the left
    middle = [3, 4, 5, 6, 7, 8, 9]
    last = [9, 10, 11, 12, 12, 12, 12]  # the last frame repeated on the right
    for row, idx in zip(out, (first, middle, last), strict=True):
        np.testing.assert_array_equal(row[0::2], idx)
        np.testing.assert_array_equal(row[1::2], np.array(idx) * 10)


def test_lfr_ready_never_needs_right_padding() -> None:
    assert lfr_ready(3, 7, 6) == 0
    assert lfr_ready(4, 7, 6) == 1  # frames 0..3 are all that row 0 needs
    assert lfr_ready(9, 7, 6) == 1
    assert lfr_ready(10, 7, 6) == 2
    assert lfr_count(10, 6) == 2 and lfr_count(13, 6) == 3


def test_cmvn_am_mvn_round_trip_and_funasr_layout(tmp_path: Path) -> None:
    shift = np.linspace(-9, -1, 560).astype(np.float32)
    scale = np.linspace(0.1, 0.5, 560).astype(np.float32)
    write_am_mvn(Cmvn(shift, scale), tmp_path / "am.mvn")
    text = (tmp_path / "am.mvn").read_text()
    assert text.startswith("<Nnet>\n<Splice> 560 560\n") and "<AddShift> 560 560\n<LearnRateCoef> 0 [ " in text
    back = read_am_mvn(tmp_path / "am.mvn")
    np.testing.assert_allclose(back.shift, shift, rtol=1e-6)
    np.testing.assert_allclose(back.scale, scale, rtol=1e-6)
    x = np.ones((2, 560), np.float32)
    np.testing.assert_allclose(back.apply(x), np.tile((1 + shift) * scale, (2, 1)), rtol=1e-5)


def test_read_am_mvn_hand_written(tmp_path: Path) -> None:
    (tmp_path / "am.mvn").write_text(
        "<Nnet>\n<Splice> 3 3\n[ 0 ]\n<AddShift> 3 3\n<LearnRateCoef> 0 [ -1 -2 -3 ]\n"
        "<Rescale> 3 3\n<LearnRateCoef> 0 [ 0.5 0.25 2 ]\n</Nnet>\n"
    )
    cmvn = read_am_mvn(tmp_path / "am.mvn")
    np.testing.assert_allclose(cmvn.apply(np.array([[1.0, 2.0, 3.0]], np.float32)), [[0.0, 0.0, 0.0]])
    np.testing.assert_allclose(cmvn.apply(np.array([[3.0, 6.0, 4.0]], np.float32)), [[1.0, 1.0, 2.0]])
    (tmp_path / "bad.mvn").write_text("<Nnet>\n<AddShift> 3 3\n<LearnRateCoef> 0 [ 1 2 3 ]\n</Nnet>\n")
    with pytest.raises(ValueError, match="Rescale"):
        read_am_mvn(tmp_path / "bad.mvn")


@pytest.mark.parametrize("piece", [160, 1000, 3333])
def test_streaming_frontend_equals_offline(piece: int) -> None:
    audio = chirp(1.37, seed=3)
    cmvn = Cmvn(np.full(560, -8.0, np.float32), np.full(560, 0.3, np.float32))
    offline = Frontend(FrontendOptions(), cmvn)(audio)
    stream = StreamingFrontend(FrontendOptions(), cmvn)
    rows = [stream.accept(audio[i : i + piece]) for i in range(0, audio.size, piece)]
    rows.append(stream.finish())
    streamed = np.concatenate(rows)
    assert streamed.shape == offline.shape == (lfr_count(1 + (audio.size - 400) // 160, 6), 560)
    np.testing.assert_allclose(streamed, offline, atol=1e-5)


def test_frontend_options_from_funasr_config() -> None:
    opts = FrontendOptions.from_config({"fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25,
                                        "frame_shift": 10, "lfr_m": 7, "lfr_n": 6, "dither": 1.0,
                                        "cmvn_file": "am.mvn"})
    assert opts == FrontendOptions()
    assert opts.knf_options().frame_opts.dither == 0.0  # dither is forced off whatever the config says
    assert opts.feature_dim == 560 and opts.lfr_frame_ms == 60.0
