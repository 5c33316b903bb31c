"""Whisper-Paraformer on a tiny random head and a stand-in encoder: export, offline and streaming decoding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from models.asr.decoding import DecodeOptions
from models.asr.runtime import ModelDirError
from models.asr.streaming import stream_audio
from models.asr.wparaformer.features import stack_frames
from models.asr.wparaformer.runtime import WhisperParaformer, is_whisper_paraformer_dir
from models.asr.wparaformer.streaming import WhisperStreamingRecognizer, whisper_streaming_options
from tests.conftest import chirp
from tests.models.asr.wparaformer.conftest import StandInEncoder


def _model(d: Path, **kw: Any) -> WhisperParaformer:
    return WhisperParaformer(d, encoder=StandInEncoder(), decoding=DecodeOptions.greedy(), quantized=False, **kw)


def test_stack_frames_pads_the_last_group() -> None:
    x = np.arange(14, dtype=np.float32).reshape(7, 2)
    s = stack_frames(x, 3)
    assert s.shape == (3, 6)
    np.testing.assert_array_equal(s[0], [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(s[2], [12, 13, 0, 0, 0, 0])
    assert stack_frames(x, 1) is x


def test_export_layout_and_config(tiny_wparaformer: tuple[Path, Any]) -> None:
    d, _ = tiny_wparaformer
    names = {p.name for p in d.iterdir()}
    assert {"stream_encoder_quant.onnx", "stream_decoder_quant.onnx", "config.yaml", "tokens.json",
            "tokens.model"} <= names
    assert "model.onnx" not in names and "model_quant.onnx" not in names
    conf = yaml.safe_load((d / "config.yaml").read_text())
    assert conf["simulsub"]["input"] == "whisper-encoder"
    assert conf["simulsub"]["whisper"]["stack"] == 3 and conf["simulsub"]["whisper"]["dim"] == 16
    assert is_whisper_paraformer_dir(d)


def test_offline_matches_torch(tiny_wparaformer: tuple[Path, Any]) -> None:
    """The ONNX halves + numpy CIF give the torch model's own offline tokens (greedy, float graphs)."""
    torch = pytest.importorskip("torch")
    d, model = tiny_wparaformer
    rt = _model(d)
    feats = rt.features(chirp(2.5, seed=3))
    assert feats.shape[1] == 48
    with torch.no_grad():
        logp, num = model.infer(torch.from_numpy(feats[None]), torch.tensor([feats.shape[0]]))
    n = int(num[0]) - model.config.predictor_bias
    want = logp[0, :n].argmax(-1).tolist()
    got = rt.recognize_features(feats)
    assert list(got.ids) == want
    assert n > 0


def test_streaming_two_pass_final_is_the_offline_result(tiny_wparaformer: tuple[Path, Any]) -> None:
    d, _ = tiny_wparaformer
    rt = _model(d)
    audio = chirp(3.3, seed=5)
    rec = WhisperStreamingRecognizer(rt, whisper_streaming_options(600, 300))
    partials, final = stream_audio(rec, audio, step_ms=70)
    assert final.final and final.text == rt.transcribe(audio)
    assert partials and all(not p.final for p in partials)
    assert final.audio_ms == pytest.approx(3300, abs=1)


def test_one_pass_with_full_context_equals_offline(tiny_wparaformer: tuple[Path, Any]) -> None:
    """With context covering the whole segment every chunk encodes exactly the offline frames, so carrying the CIF
    state (leftover weight, partial embedding) from chunk to chunk must give the offline tokens."""
    d, _ = tiny_wparaformer
    rt = _model(d)
    audio = chirp(4.0, seed=9)
    opts = whisper_streaming_options(240, 60_000, left_context_ms=60_000, two_pass=False)
    _, final = stream_audio(WhisperStreamingRecognizer(rt, opts), audio, step_ms=130)
    assert final.text == rt.transcribe(audio)
    assert final.num_tokens == len(rt.recognize_features(rt.features(audio)).ids)


def test_streaming_bounds_the_encoder_window_and_resets(tiny_wparaformer: tuple[Path, Any]) -> None:
    d, _ = tiny_wparaformer
    rt = _model(d)
    enc = rt.encoder
    assert isinstance(enc, StandInEncoder)
    seen: list[int] = []
    orig = enc.encode

    def spy(mel: np.ndarray) -> np.ndarray:
        seen.append(mel.shape[1])
        return orig(mel)

    enc.encode = spy  # type: ignore[method-assign]
    rec = WhisperStreamingRecognizer(rt, whisper_streaming_options(600, 300, left_context_ms=1200, two_pass=False))
    audio = chirp(8.0, seed=1)
    for i in range(0, audio.size, 1600):
        rec.feed(audio[i : i + 1600])
    # window = left context + chunk + look-ahead = 2.1 s = 210 mel frames at most
    assert seen and max(seen) <= 210
    first = rec.finish()
    assert rec.audio_ms == 0.0  # reset after the final
    _, again = stream_audio(rec, audio, step_ms=100)
    assert again.text == first.text


def test_encoder_width_must_match(tiny_wparaformer: tuple[Path, Any]) -> None:
    d, _ = tiny_wparaformer
    with pytest.raises(ModelDirError, match="16-dim Whisper frames"):
        WhisperParaformer(d, encoder=StandInEncoder(dim=8), quantized=False)


def test_a_plain_paraformer_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("model: Paraformer\n")
    assert not is_whisper_paraformer_dir(tmp_path)
    with pytest.raises(ModelDirError, match="not a Whisper-Paraformer"):
        WhisperParaformer(tmp_path, encoder=StandInEncoder())


def test_int8_graphs_decode(tiny_wparaformer: tuple[Path, Any]) -> None:
    d, _ = tiny_wparaformer
    rt = WhisperParaformer(d, encoder=StandInEncoder(), quantized=True)
    text = rt.transcribe(chirp(2.0, seed=2))
    assert isinstance(text, str) and "beam" in rt.decoding_summary


def test_frame_statistics_fold_into_the_first_layer(tiny_wparaformer: tuple[Path, Any]) -> None:
    """Standardising the Whisper frames in training and folding the statistics into the first linear layer on
    export give the same head outputs."""
    torch = pytest.importorskip("torch")
    from models.asr.wparaformer.export import fold_frame_stats
    from models.asr.wparaformer.train import FrameStats

    _, model = tiny_wparaformer
    rng = np.random.default_rng(0)
    raw = (rng.standard_normal((40, 16)) * rng.uniform(0.1, 20, 16) + rng.uniform(-5, 5, 16)).astype(np.float32)
    stats = FrameStats.estimate([raw])
    np.testing.assert_allclose(stats.apply(raw).std(axis=0), 1.0, rtol=1e-3)
    folded = fold_frame_stats(model, stats.mean, stats.std, 3)
    x_std = torch.from_numpy(stack_frames(stats.apply(raw), 3, pad=stats.zero)[None])
    x_raw = torch.from_numpy(stack_frames(raw, 3)[None])
    lengths = torch.tensor([x_raw.shape[1]])
    with torch.no_grad():
        a = model.encode(x_std, lengths)[2]
        b = folded.encode(x_raw, lengths)[2]
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4)
