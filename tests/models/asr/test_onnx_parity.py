"""Our ONNX export against PyTorch on a tiny random model, and the streaming recogniser on top of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from models.asr.runtime import ParaformerOnnx
from models.asr.streaming import StreamingOptions, StreamingRecognizer, stream_audio
from tests.conftest import chirp

torch = pytest.importorskip("torch")


def test_export_writes_funasr_layout(tiny_export: tuple[Path, Any]) -> None:
    out, _ = tiny_export
    names = {p.name for p in out.iterdir()}
    assert {"model.onnx", "model_quant.onnx", "config.yaml", "am.mvn", "tokens.json",
            "stream_encoder.onnx", "stream_decoder.onnx"} <= names
    conf = yaml.safe_load((out / "config.yaml").read_text())
    assert conf["model_conf"]["predictor_bias"] == 1
    assert conf["frontend_conf"]["lfr_m"] == 7 and conf["frontend_conf"]["lfr_n"] == 6
    import onnx

    graph = onnx.load(str(out / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["speech", "speech_lengths"]
    assert [o.name for o in graph.output] == ["logits", "token_num", "ctc_logprobs"]  # FunASR reads the first two
    enc_graph = onnx.load(str(out / "stream_encoder.onnx")).graph
    assert [o.name for o in enc_graph.output] == ["enc", "enc_len", "alphas", "ctc_logprobs"]
    assert set(conf["simulsub"]["decoding"]) >= {"lm_weight", "ctc_weight", "skip_penalty", "beam", "top_k"}
    assert graph.input[1].type.tensor_type.elem_type == onnx.TensorProto.INT32


@pytest.mark.parametrize("frames", [9, 41, 77])
def test_offline_onnx_matches_torch(tiny_export: tuple[Path, Any], frames: int) -> None:
    out, model = tiny_export
    rt = ParaformerOnnx(out)
    x = np.random.default_rng(frames).standard_normal((1, frames, 560)).astype(np.float32)
    with torch.no_grad():
        logp, num, ctc = model.infer(torch.from_numpy(x), torch.tensor([frames]), with_ctc=True)
    logits, token_num, ctc_onnx = rt.session.run(None, {"speech": x, "speech_lengths": np.array([frames], np.int32)})
    np.testing.assert_allclose(ctc_onnx, ctc.numpy(), atol=1e-4)
    assert token_num.dtype == np.int32
    assert int(token_num[0]) == int(num[0]) > 0
    np.testing.assert_allclose(logits, logp.numpy(), atol=1e-4)
    np.testing.assert_allclose(np.exp(logits).sum(-1), 1.0, atol=1e-4)  # log-softmax output


def test_batched_onnx_matches_torch(tiny_export: tuple[Path, Any]) -> None:
    out, model = tiny_export
    rt = ParaformerOnnx(out)
    x = np.random.default_rng(5).standard_normal((2, 50, 560)).astype(np.float32)
    lengths = np.array([50, 31], np.int32)
    with torch.no_grad():
        logp, num = model.infer(torch.from_numpy(x), torch.from_numpy(lengths).long())
    logits, token_num = rt.session.run(None, {"speech": x, "speech_lengths": lengths})[:2]
    np.testing.assert_array_equal(token_num, num.numpy())
    for b in range(2):
        n = int(num[b])
        np.testing.assert_allclose(logits[b, :n], logp[b, :n].numpy(), atol=1e-4)


def test_quantized_model_loads_and_agrees_on_length(tiny_export: tuple[Path, Any]) -> None:
    out, _ = tiny_export
    f, q = ParaformerOnnx(out), ParaformerOnnx(out, quantized=True)
    feats = f.features(chirp(2.0, seed=4))
    nf = len(f.session.run(None, {"speech": feats[None], "speech_lengths": np.array([len(feats)], np.int32)})[0][0])
    nq = len(q.session.run(None, {"speech": feats[None], "speech_lengths": np.array([len(feats)], np.int32)})[0][0])
    assert (out / "model_quant.onnx").stat().st_size < (out / "model.onnx").stat().st_size
    assert abs(nf - nq) <= 1


def test_streaming_halves_match_torch(tiny_export: tuple[Path, Any]) -> None:
    out, model = tiny_export
    rt = ParaformerOnnx(out)
    x = np.random.default_rng(7).standard_normal((23, 560)).astype(np.float32)
    enc, alphas, _ = rt.encode(x)
    with torch.no_grad():
        enc_t, _, alphas_t = model.encode(torch.from_numpy(x[None]), torch.tensor([23]))
    np.testing.assert_allclose(enc, enc_t[0].numpy(), atol=1e-4)
    np.testing.assert_allclose(alphas, alphas_t[0].numpy(), atol=1e-5)
    emb = np.random.default_rng(8).standard_normal((6, 32)).astype(np.float32)
    logits = rt.decode_embeddings(enc, emb)
    with torch.no_grad():
        ref = model.decoder(torch.from_numpy(emb[None]), torch.ones(1, 6, dtype=torch.bool), enc_t,
                            torch.ones(1, 23, dtype=torch.bool))
    np.testing.assert_allclose(logits, torch.log_softmax(ref, -1)[0].numpy(), atol=1e-4)


def test_streaming_with_full_context_equals_offline(tiny_export: tuple[Path, Any]) -> None:
    out, _ = tiny_export
    rt = ParaformerOnnx(out)
    audio = chirp(2.5, seed=9)
    offline = rt.transcribe(audio)
    assert offline  # the random model fires tokens on this audio
    rec = StreamingRecognizer(rt, StreamingOptions(chunk_ms=600, lookahead_ms=60_000, left_context_ms=60_000,
                                                   two_pass=False))
    partials, final = stream_audio(rec, audio, step_ms=100)
    assert final.final and final.text == offline
    assert all(not p.final for p in partials)


def test_streaming_chunks_give_partials_then_a_final(tiny_export: tuple[Path, Any]) -> None:
    out, _ = tiny_export
    rt = ParaformerOnnx(out)
    audio = chirp(3.0, seed=10)
    rec = StreamingRecognizer(rt, StreamingOptions(chunk_ms=600, lookahead_ms=300, left_context_ms=1200,
                                                   two_pass=False))
    partials, final = stream_audio(rec, audio, step_ms=200)
    assert partials, "CIF should fire during the utterance"
    assert [p.audio_ms for p in partials] == sorted(p.audio_ms for p in partials)
    assert partials[-1].audio_ms < final.audio_ms == pytest.approx(3000.0)
    assert final.final and final.num_tokens >= 1
    assert all(w.startswith("w") or w.startswith("x") for w in final.text.split())  # from the tiny vocabulary
    # the recogniser is reset: a second segment starts from scratch and gives the same result
    _, again = stream_audio(rec, audio, step_ms=200)
    assert again.text == final.text
    # an empty segment gives an empty final hypothesis
    assert rec.feed(np.zeros(0, np.float32)) == []
    empty = rec.finish()
    assert empty.final and empty.text == "" and empty.audio_ms == 0.0
    # two-pass (the default): the same partials, and the final from the offline graph over the whole segment
    two = StreamingRecognizer(rt, StreamingOptions(chunk_ms=600, lookahead_ms=300, left_context_ms=1200))
    partials2, final2 = stream_audio(two, audio, step_ms=200)
    assert [p.text for p in partials2] == [p.text for p in partials]
    assert final2.final and final2.text == rt.transcribe(audio)


def test_no_fired_token_gives_an_empty_transcript(tmp_path: Path) -> None:
    from models.asr.frontend import Cmvn, FrontendOptions
    from models.asr.paraformer.export import export_directory
    from models.asr.tokens import TokenList
    from tests.conftest import TINY_TOKENS, tiny_model

    model = tiny_model()
    with torch.no_grad():
        model.predictor.out.bias.fill_(-30.0)  # the predictor never fires: only the 0.45 tail is integrated
    export_directory(model, tmp_path, frontend=FrontendOptions(), cmvn=Cmvn.from_stats(np.zeros(560, np.float32),
                     np.ones(560, np.float32)), tokens=TokenList(list(TINY_TOKENS)))
    rt = ParaformerOnnx(tmp_path)
    x = np.random.default_rng(0).standard_normal((1, 30, 560)).astype(np.float32)
    logits, token_num = rt.session.run(None, {"speech": x, "speech_lengths": np.array([30], np.int32)})[:2]
    assert int(token_num[0]) == 0 and logits.shape[1] == 1  # one masked slot, nothing to read
    assert rt.recognize_features(x[0]).text == ""
