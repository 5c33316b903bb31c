"""Loading a directory in FunASR's offline ONNX layout, built on the fly (no torch needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.asr.runtime import ModelConfig, ModelDirError, ParaformerOnnx, read_config
from models.asr.streaming import StreamingRecognizer, stream_audio
from tests.conftest import chirp

onnx = pytest.importorskip("onnx")

FUNASR_TOKENS = ["<blank>", "<s>", "</s>", "hel@@", "lo", "wor@@", "ld", "你", "好", "<unk>"]

FUNASR_CONFIG = """\
encoder: SANMEncoder
encoder_conf:
    output_size: 512
    attention_heads: 4
    kernel_size: 11
    sanm_shfit: 0
    selfattention_layer_type: sanm
    pos_enc_class: !!python/name:funasr.models.transformer.embedding.SinusoidalPositionEncoder ''
decoder: ParaformerSANMDecoder
predictor: CifPredictorV2
predictor_conf:
    idim: 512
    threshold: 1.0
    l_order: 1
    r_order: 1
    tail_threshold: 0.45
model: Paraformer
model_conf:
    ctc_weight: 0.0
    lsm_weight: 0.1
    length_normalized_loss: true
    predictor_weight: 1.0
    predictor_bias: 1
    sampling_ratio: 0.75
frontend: WavFrontend
frontend_conf:
    fs: 16000
    window: hamming
    n_mels: 80
    frame_length: 25
    frame_shift: 10
    lfr_m: 7
    lfr_n: 6
    dither: 1.0
specaug: SpecAugLFR
specaug_conf:
    freq_mask_width_range: !!python/tuple [0, 30]
"""


def constant_paraformer(path: Path, ids: list[int], vocab: int) -> None:
    """An ONNX graph with FunASR's offline signature that always returns the log-probs of ``ids``."""
    from onnx import TensorProto, helper

    logp = np.full((1, len(ids), vocab), -20.0, np.float32)
    for i, t in enumerate(ids):
        logp[0, i, t] = -1e-3
    nodes = [
        helper.make_node("Constant", [], ["logits_c"], value=helper.make_tensor(
            "lc", TensorProto.FLOAT, logp.shape, logp.ravel().tolist())),
        helper.make_node("Identity", ["logits_c"], ["logits"]),
        helper.make_node("Shape", ["speech_lengths"], ["batch"]),
        helper.make_node("Constant", [], ["n"], value=helper.make_tensor("nc", TensorProto.INT32, [1], [len(ids)])),
        helper.make_node("Cast", ["batch"], ["batch32"], to=TensorProto.INT32),
        helper.make_node("Mul", ["n", "batch32"], ["token_num"]),
    ]
    graph = helper.make_graph(
        nodes, "paraformer",
        [helper.make_tensor_value_info("speech", TensorProto.FLOAT, ["B", "T", 560]),
         helper.make_tensor_value_info("speech_lengths", TensorProto.INT32, ["B"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", "N", vocab]),
         helper.make_tensor_value_info("token_num", TensorProto.INT32, ["B"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def make_funasr_dir(root: Path, ids: list[int]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(FUNASR_CONFIG, encoding="utf-8")
    (root / "tokens.json").write_text(json.dumps(FUNASR_TOKENS, ensure_ascii=False), encoding="utf-8")
    vec = " ".join(["-8.5"] * 560)
    sca = " ".join(["0.25"] * 560)
    (root / "am.mvn").write_text(
        f"<Nnet>\n<Splice> 560 560\n[ 0 ]\n<AddShift> 560 560\n<LearnRateCoef> 0 [ {vec} ]\n"
        f"<Rescale> 560 560\n<LearnRateCoef> 0 [ {sca} ]\n</Nnet>\n", encoding="utf-8")
    constant_paraformer(root / "model.onnx", ids, len(FUNASR_TOKENS))
    return root


def test_funasr_directory_decodes_bpe_and_drops_end_slot(tmp_path: Path) -> None:
    # hel@@ lo wor@@ ld + one extra slot (predictor_bias = 1) that must be dropped even though it is not </s>
    d = make_funasr_dir(tmp_path / "funasr", [3, 4, 5, 6, 7])
    rt = ParaformerOnnx(d)
    assert rt.config.predictor_bias == 1 and rt.config.tail == 0.45
    assert not rt.has_streaming
    assert rt.cmvn is not None and float(rt.cmvn.shift[0]) == -8.5
    assert rt.transcribe(chirp(1.0)) == "hello world"


def test_funasr_cjk_and_specials(tmp_path: Path) -> None:
    d = make_funasr_dir(tmp_path / "funasr", [1, 7, 0, 8, 9, 2])
    assert ParaformerOnnx(d).transcribe(chirp(1.0)) == "你好"


def test_funasr_directory_streams_by_redecoding(tmp_path: Path) -> None:
    d = make_funasr_dir(tmp_path / "funasr", [3, 4, 5, 6, 2])
    rec = StreamingRecognizer(ParaformerOnnx(d))
    partials, final = stream_audio(rec, chirp(2.0), step_ms=250)
    assert final.final and final.text == "hello world"
    assert partials and partials[0].text == "hello world"  # a partial keeps every slot


def test_missing_pieces_fail_early(tmp_path: Path) -> None:
    with pytest.raises(ModelDirError, match="does not exist"):
        ParaformerOnnx(tmp_path / "nowhere")
    d = make_funasr_dir(tmp_path / "funasr", [3, 4, 2])
    (d / "model.onnx").rename(d / "model_quant.onnx")  # some FunASR downloads ship only the int8 graph
    assert ParaformerOnnx(d, quantized=False).transcribe(chirp(0.5)) == "hello"
    (d / "model_quant.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelDirError, match="onnxruntime cannot load"):
        ParaformerOnnx(d)
    (d / "model_quant.onnx").unlink()
    with pytest.raises(ModelDirError, match=r"model\.onnx"):
        ParaformerOnnx(d)
    (d / "config.yaml").write_text("a: [unclosed\n")
    with pytest.raises(ModelDirError, match="not valid YAML"):
        ParaformerOnnx(d)
    (d / "config.yaml").unlink()
    with pytest.raises(ModelDirError, match=r"config\.yaml"):
        ParaformerOnnx(d)


BUNDLED = Path(__file__).resolve().parents[3] / "models" / "pretrained" / "paraformer-en"


def test_export_config_names_bpe_language(tiny_export: tuple[Path, Any], tmp_path: Path) -> None:
    # funasr_onnx reads ▁-pieces only with lang: en-bpe (else "invalid character: ▁a"); our loader ignores the key
    out, model = tiny_export
    assert "\nlang: en-bpe\n" in (out / "config.yaml").read_text(encoding="utf-8")
    assert read_config(out)["lang"] == "en-bpe"
    rt = ParaformerOnnx(out)
    assert rt.has_streaming and rt.tokens.tokens[4].startswith("▁")
    from models.asr.frontend import FrontendOptions
    from models.asr.paraformer.export import write_config
    from models.asr.tokens import TokenList

    # a vocabulary without ▁-pieces (@@ BPE, characters) gets no lang key: funasr_onnx's default tokenizer fits it
    path = write_config(model, tmp_path, FrontendOptions(), tokens=TokenList(list(FUNASR_TOKENS)))
    assert "lang" not in read_config(path.parent)


def test_bundled_config_names_bpe_language() -> None:
    raw = read_config(BUNDLED)
    assert raw["lang"] == "en-bpe" and raw["tokenizer_conf"] == {"bpemodel": "tokens.model"}
    assert ModelConfig.from_yaml(raw).streaming is not None
