"""FunASR's online (streaming) Paraformer export is refused with one clear line, never run into a traceback.

The directories are built on the fly with tiny ONNX graphs that have the real export's signatures (no torch):
the encoder ``model.onnx`` maps ``speech, speech_lengths → enc, enc_len, alphas`` and the decoder ``decoder.onnx``
maps ``enc, enc_len, acoustic_embeds, acoustic_embeds_len, in_cache_0 … → logits, sample_ids, out_cache_0 …``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from models.asr import ModelDirError, ParaformerOnnx
from tests.conftest import chirp
from tests.models.asr.test_funasr_dir import FUNASR_TOKENS, make_funasr_dir

onnx = pytest.importorskip("onnx")

HIDDEN = 560  # the tiny encoder passes its features through, so enc is as wide as one LFR frame
DECODER_BLOCKS = 2  # one in_cache_i / out_cache_i pair per decoder block
FSMN_ORDER = 10  # decoder_conf.kernel_size - 1: frames of FSMN memory per cache

ONLINE_CONFIG = """\
model: ParaformerStreaming
model_conf:
    ctc_weight: 0.0
    predictor_bias: 1
encoder: SANMEncoderChunkOpt
encoder_conf:
    output_size: 560
    attention_heads: 4
    num_blocks: 2
    input_layer: pe_online
    chunk_size: [12, 15]
    stride: [8, 10]
    pad_left: [0, 0]
    encoder_att_look_back_factor: [4, 4]
    decoder_att_look_back_factor: [1, 1]
decoder: ParaformerSANMDecoder
decoder_conf:
    attention_heads: 4
    num_blocks: 2
    kernel_size: 11
predictor: CifPredictorV2
predictor_conf:
    idim: 560
    threshold: 1.0
    tail_threshold: 0.45
frontend: WavFrontendOnline
frontend_conf:
    fs: 16000
    window: hamming
    n_mels: 80
    frame_length: 25
    frame_shift: 10
    lfr_m: 7
    lfr_n: 6
"""


def _save(nodes: list[Any], inputs: list[Any], outputs: list[Any], path: Path) -> None:
    from onnx import helper

    model = helper.make_model(helper.make_graph(nodes, path.stem, inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def online_encoder(path: Path) -> None:
    """FunASR's online encoder signature: ``enc`` = the features, ``alphas`` = their mean per frame."""
    from onnx import TensorProto, helper

    _save(
        [helper.make_node("Identity", ["speech"], ["enc"]),
         helper.make_node("Identity", ["speech_lengths"], ["enc_len"]),
         helper.make_node("ReduceMean", ["speech"], ["alphas"], axes=[2], keepdims=0)],
        [helper.make_tensor_value_info("speech", TensorProto.FLOAT, ["B", "T", HIDDEN]),
         helper.make_tensor_value_info("speech_lengths", TensorProto.INT32, ["B"])],
        [helper.make_tensor_value_info("enc", TensorProto.FLOAT, ["B", "T", HIDDEN]),
         helper.make_tensor_value_info("enc_len", TensorProto.INT32, ["B"]),
         helper.make_tensor_value_info("alphas", TensorProto.FLOAT, ["B", "T"])],
        path,
    )


def online_decoder(path: Path, vocab: int = len(FUNASR_TOKENS), blocks: int = DECODER_BLOCKS) -> None:
    """FunASR's online decoder signature: every input used, each ``in_cache_i`` passed on as ``out_cache_i``."""
    from onnx import TensorProto, helper

    weight = np.linspace(-1, 1, HIDDEN * vocab, dtype=np.float32).reshape(HIDDEN, vocab)
    nodes = [
        helper.make_node("Constant", [], ["w"], value=helper.make_tensor("wc", TensorProto.FLOAT, weight.shape,
                                                                         weight.ravel().tolist())),
        helper.make_node("ReduceMean", ["enc"], ["enc_mean"], axes=[1], keepdims=1),
        helper.make_node("Add", ["acoustic_embeds", "enc_mean"], ["mixed"]),
        helper.make_node("MatMul", ["mixed", "w"], ["scores"]),
        helper.make_node("LogSoftmax", ["scores"], ["logits"], axis=-1),
        helper.make_node("ArgMax", ["logits"], ["sample_ids"], axis=-1, keepdims=0),
        helper.make_node("Add", ["enc_len", "acoustic_embeds_len"], ["lens_unused"]),
    ]
    inputs = [helper.make_tensor_value_info("enc", TensorProto.FLOAT, ["B", "T", HIDDEN]),
              helper.make_tensor_value_info("enc_len", TensorProto.INT32, ["B"]),
              helper.make_tensor_value_info("acoustic_embeds", TensorProto.FLOAT, ["B", "N", HIDDEN]),
              helper.make_tensor_value_info("acoustic_embeds_len", TensorProto.INT32, ["B"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", "N", vocab]),
               helper.make_tensor_value_info("sample_ids", TensorProto.INT64, ["B", "N"])]
    for i in range(blocks):
        nodes.append(helper.make_node("Identity", [f"in_cache_{i}"], [f"out_cache_{i}"]))
        inputs.append(helper.make_tensor_value_info(f"in_cache_{i}", TensorProto.FLOAT, ["B", HIDDEN, FSMN_ORDER]))
        outputs.append(helper.make_tensor_value_info(f"out_cache_{i}", TensorProto.FLOAT, ["B", HIDDEN, FSMN_ORDER]))
    _save(nodes, inputs, outputs, path)


def make_online_dir(root: Path, *, quantized: bool = True) -> Path:
    """A directory laid out as ``funasr-export`` writes an online Paraformer (``quantized``: the ``_quant`` copies
    too, as ``++quantize=true`` does)."""
    make_funasr_dir(root, [3, 4, 2])  # tokens.json, am.mvn; its offline model.onnx is replaced below
    (root / "config.yaml").write_text(ONLINE_CONFIG, encoding="utf-8")
    online_encoder(root / "model.onnx")
    online_decoder(root / "decoder.onnx")
    if quantized:
        shutil.copy(root / "model.onnx", root / "model_quant.onnx")
        shutil.copy(root / "decoder.onnx", root / "decoder_quant.onnx")
    return root


@pytest.fixture()
def wav(tmp_path: Path) -> Path:
    import soundfile as sf

    path = tmp_path / "speech.wav"
    sf.write(str(path), chirp(1.0), 16000)
    return path


def test_graphs_have_the_online_export_signature(tmp_path: Path) -> None:
    import onnxruntime as ort

    d = make_online_dir(tmp_path / "online")
    dec = ort.InferenceSession(str(d / "decoder.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in dec.get_inputs()] == ["enc", "enc_len", "acoustic_embeds", "acoustic_embeds_len",
                                                  "in_cache_0", "in_cache_1"]
    assert [o.name for o in dec.get_outputs()] == ["logits", "sample_ids", "out_cache_0", "out_cache_1"]
    enc = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in enc.get_outputs()] == ["enc", "enc_len", "alphas"]


def test_cli_refuses_online_export_in_one_line(tmp_path: Path, wav: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    d = make_online_dir(tmp_path / "online")
    assert main(["transcribe", str(wav), "--asr-model", str(d)]) == 2
    out, err = capfd.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("simulsub transcribe: error: cannot load ASR model: ")
    assert "FunASR online (streaming) Paraformer export" in lines[0]
    assert "decoder_quant.onnx takes in_cache_0, in_cache_1 inputs" in lines[0]
    assert "export the offline" in lines[0] and "Traceback" not in err


@pytest.mark.parametrize("quantized", [False, True])
def test_python_api_raises_model_dir_error(tmp_path: Path, quantized: bool) -> None:
    d = make_online_dir(tmp_path / "online", quantized=quantized)
    with pytest.raises(ModelDirError, match=r"FunASR online \(streaming\) Paraformer export \(decoder(_quant)?\.onnx "
                                            r"takes in_cache_0, in_cache_1 inputs; model(_quant)?\.onnx is its "
                                            r"encoder\)"):
        ParaformerOnnx(d, quantized=quantized)


def test_config_alone_names_online_encoder(tmp_path: Path) -> None:
    # only the encoder copied over: config.yaml still says what it is
    d = make_online_dir(tmp_path / "online", quantized=False)
    (d / "decoder.onnx").unlink()
    with pytest.raises(ModelDirError, match=r"online \(streaming\).*config\.yaml: model: ParaformerStreaming; "
                                            r"model\.onnx outputs enc, enc_len, alphas"):
        ParaformerOnnx(d)
    (d / "config.yaml").write_text("model_conf: {predictor_bias: 1}\n", encoding="utf-8")
    with pytest.raises(ModelDirError, match=r"model\.onnx is a Paraformer encoder half \(outputs enc, enc_len, "
                                            r"alphas\), not an offline graph"):
        ParaformerOnnx(d)


def test_config_pointed_at_online_graphs(tmp_path: Path, wav: Path, capfd: pytest.CaptureFixture[str]) -> None:
    # the streaming halves named in simulsub.streaming, beside a working offline graph: refused at load time
    d = make_online_dir(tmp_path / "online", quantized=False)
    (d / "model.onnx").rename(d / "encoder.onnx")
    make_funasr_dir(tmp_path / "offline", [3, 4, 2])
    shutil.copy(tmp_path / "offline" / "model.onnx", d / "model.onnx")
    config = {"model": "Paraformer", "model_conf": {"predictor_bias": 1},
              "simulsub": {"streaming": {"encoder": "encoder.onnx", "decoder": "decoder.onnx"}}}
    (d / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(ModelDirError, match=r"online \(streaming\).*decoder\.onnx takes in_cache_0, in_cache_1"):
        ParaformerOnnx(d)
    (d / "model.onnx").unlink()  # no offline graph: the halves decode offline, and are refused the same way
    with pytest.raises(ModelDirError, match=r"decoder\.onnx takes in_cache_0, in_cache_1"):
        ParaformerOnnx(d)
    from app.cli import main

    assert main(["transcribe", str(wav), "--asr-model", str(d), "--streaming", "--float"]) == 2
    err = capfd.readouterr().err
    assert len(err.splitlines()) == 1 and "in_cache_0" in err and "Traceback" not in err


def test_graph_inputs_that_cannot_be_fed(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    # an offline graph with a third required input (as the contextual Paraformer's bias_embed)
    d = make_funasr_dir(tmp_path / "ctx", [3, 4, 2])
    _save([helper.make_node("Identity", ["speech"], ["logits"]),
           helper.make_node("Add", ["speech_lengths", "bias_len"], ["token_num"]),
           helper.make_node("Identity", ["bias_embed"], ["bias_out"])],
          [helper.make_tensor_value_info("speech", TensorProto.FLOAT, ["B", "T", HIDDEN]),
           helper.make_tensor_value_info("speech_lengths", TensorProto.INT32, ["B"]),
           helper.make_tensor_value_info("bias_len", TensorProto.INT32, ["B"]),
           helper.make_tensor_value_info("bias_embed", TensorProto.FLOAT, ["B", "W", HIDDEN])],
          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", "T", HIDDEN]),
           helper.make_tensor_value_info("token_num", TensorProto.INT32, ["B"]),
           helper.make_tensor_value_info("bias_out", TensorProto.FLOAT, ["B", "W", HIDDEN])],
          d / "model.onnx")
    with pytest.raises(ModelDirError, match=r"model\.onnx needs the inputs speech, speech_lengths, bias_len, "
                                            r"bias_embed; simulsub feeds an offline Paraformer graph exactly two"):
        ParaformerOnnx(d)
    # a streaming decoder of our layout with one extra input
    enc_dir = make_online_dir(tmp_path / "halves", quantized=False)
    (enc_dir / "model.onnx").rename(enc_dir / "enc.onnx")
    online_decoder(enc_dir / "dec.onnx", blocks=0)
    model = onnx.load(str(enc_dir / "dec.onnx"))
    model.graph.input.append(helper.make_tensor_value_info("hotwords", TensorProto.FLOAT, ["B", HIDDEN]))
    model.graph.node.append(helper.make_node("Identity", ["hotwords"], ["hot_out"]))
    model.graph.output.append(helper.make_tensor_value_info("hot_out", TensorProto.FLOAT, ["B", HIDDEN]))
    onnx.save(model, str(enc_dir / "dec.onnx"))
    (enc_dir / "decoder.onnx").unlink()
    config = {"model": "Paraformer", "model_conf": {"predictor_bias": 1},
              "simulsub": {"streaming": {"encoder": "enc.onnx", "decoder": "dec.onnx"}}}
    (enc_dir / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(ModelDirError, match=r"dec\.onnx takes the inputs .*hotwords but simulsub feeds a streaming "
                                            r"decoder exactly enc, enc_len, acoustic_embeds, acoustic_embeds_len "
                                            r"\(hotwords cannot be fed\)"):
        ParaformerOnnx(enc_dir)
    # without the extra input the same halves load and decode (offline through the halves)
    online_decoder(enc_dir / "dec.onnx", blocks=0)
    rt = ParaformerOnnx(enc_dir)
    assert rt.has_streaming and isinstance(rt.transcribe(chirp(1.0)), str)


def test_many_caches_stay_one_short_line(tmp_path: Path) -> None:
    d = make_online_dir(tmp_path / "online", quantized=False)
    online_decoder(d / "decoder.onnx", blocks=16)  # paraformer-large online: one cache per decoder block
    with pytest.raises(ModelDirError) as e:
        ParaformerOnnx(d)
    msg = str(e.value)
    assert "\n" not in msg and "decoder.onnx takes in_cache_0, in_cache_1, … in_cache_15 (16 inputs)" in msg


REAL_EXPORT = Path(__file__).resolve().parents[2] / "fixtures" / "funasr-online-tiny"


@pytest.mark.parametrize("extra", [[], ["--streaming"]])
def test_a_real_funasr_online_export_is_refused_in_one_line(tmp_path: Path, wav: Path, extra: list[str]) -> None:
    """FunASR 1.4.16's own export of a random streaming Paraformer (tests/fixtures/funasr-online-tiny; float
    graphs only, so the loader also falls back from model_quant.onnx: no warning may come before the refusal)."""
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("simulsub")
    p = subprocess.run([str(exe), "transcribe", str(wav), "--asr-model", str(REAL_EXPORT), *extra],
                       capture_output=True, text=True, timeout=120)
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert "FunASR online (streaming) Paraformer export" in lines[0] and "in_cache_0" in lines[0]
    assert p.stdout == ""
    store = tmp_path / "store"
    p = subprocess.run([str(exe), "models", "import", str(REAL_EXPORT)], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "SIMULSUB_MODELS": str(store)})
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (store / REAL_EXPORT.name).exists()
