"""Export a trained Paraformer to FunASR's offline ONNX directory layout, plus our streaming halves.

Written files:

- ``model.onnx`` / ``model_quant.onnx`` (onnxruntime dynamic int8): ``speech`` float32 ``[B, T, 560]`` and
  ``speech_lengths`` int32 ``[B]`` → ``logits`` ``[B, N, V]`` (log-softmax) and ``token_num`` int32 ``[B]``;
- ``stream_encoder.onnx`` (+ ``_quant``): ``speech, speech_lengths → enc, enc_len, alphas``;
- with a CTC head, both graphs add ``ctc_logprobs`` ``[B, T, V]`` (the head's log-softmax per encoder frame), which
  :mod:`models.asr.decoding` uses to rescore (FunASR's runtime reads the first two outputs and ignores it);
- ``stream_decoder.onnx`` (+ ``_quant``): ``enc, enc_len, acoustic_embeds, acoustic_embeds_len → logits``;
- ``config.yaml`` (``frontend_conf``, ``model_conf.predictor_bias``, ``predictor_conf``, ``simulsub.streaming``;
  ``lang: en-bpe`` for a SentencePiece vocabulary, without which FunASR's ``funasr_onnx`` rejects the ``▁``-pieces
  with ``invalid character: ▁a``),
  ``am.mvn`` (Kaldi nnet text CMVN), ``tokens.json`` (id → token list).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import yaml
from torch import Tensor, nn

from models.asr.decoding import DecodeOptions
from models.asr.frontend import Cmvn, FrontendOptions, write_am_mvn
from models.asr.paraformer.model import Paraformer, lengths_to_mask
from models.asr.tokens import SPM_SPACE, TokenList
from models.export_registry import check_quantization, refuse_overwrite

logger = logging.getLogger(__name__)

OPSET = 17
BPE_LANG = "en-bpe"  # config.yaml ``lang`` that makes funasr_onnx detokenise ▁-pieces with SentencePiece


class _Offline(nn.Module):
    def __init__(self, model: Paraformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, speech: Tensor, speech_lengths: Tensor) -> tuple[Tensor, ...]:
        if self.model.ctc is None:
            return self.model.infer(speech, speech_lengths.to(torch.int64))
        logits, token_num, ctc = self.model.infer(speech, speech_lengths.to(torch.int64), with_ctc=True)
        return logits, token_num, ctc


class _StreamEncoder(nn.Module):
    def __init__(self, model: Paraformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, speech: Tensor, speech_lengths: Tensor) -> tuple[Tensor, ...]:
        enc, _, alphas = self.model.encode(speech, speech_lengths.to(torch.int64))
        if self.model.ctc is None:
            return enc, speech_lengths, alphas
        return enc, speech_lengths, alphas, self.model.ctc_log_probs(enc)


class _StreamDecoder(nn.Module):
    def __init__(self, model: Paraformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, enc: Tensor, enc_len: Tensor, acoustic_embeds: Tensor, acoustic_embeds_len: Tensor) -> Tensor:
        mem_mask = lengths_to_mask(enc_len.to(torch.int64), enc.shape[1])
        tok_mask = lengths_to_mask(acoustic_embeds_len.to(torch.int64), acoustic_embeds.shape[1])
        logits = self.model.decoder(acoustic_embeds, tok_mask, enc, mem_mask)
        return torch.log_softmax(logits, dim=-1)


def _export(module: nn.Module, args: tuple[Tensor, ...], path: Path, inputs: list[str], outputs: list[str],
            axes: dict[str, dict[int, str]]) -> None:
    module.eval()
    with torch.no_grad():
        torch.onnx.export(
            module, args, str(path), input_names=inputs, output_names=outputs, dynamic_axes=axes,
            opset_version=OPSET, dynamo=False, do_constant_folding=True,
        )


def quantize(src: Path, dst: Path) -> None:
    """onnxruntime dynamic int8 quantisation (weights int8, activations quantised at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser warns on the root logger about optional pre-processing
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def export_onnx(model: Paraformer, out_dir: Path, *, quantized: bool = True, offline: bool = True) -> list[Path]:
    """Write the three graphs (and their int8 versions) to ``out_dir``; returns the written paths. ``offline=False``
    leaves out ``model.onnx`` (the runtime then decodes offline through the two streaming halves)."""
    import warnings

    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    d_in, d = model.config.input_dim, model.config.d_model
    speech = torch.randn(1, 40, d_in)
    lengths = torch.tensor([40], dtype=torch.int32)
    written: list[Path] = []
    ctc_out = ["ctc_logprobs"] if model.ctc is not None else []
    ctc_axes = {"ctc_logprobs": {0: "batch", 1: "frames"}} if ctc_out else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if offline:
            _export(_Offline(model), (speech, lengths), out_dir / "model.onnx", ["speech", "speech_lengths"],
                    ["logits", "token_num", *ctc_out],
                    {"speech": {0: "batch", 1: "frames"}, "speech_lengths": {0: "batch"},
                     "logits": {0: "batch", 1: "tokens"}, "token_num": {0: "batch"}, **ctc_axes})
        _export(_StreamEncoder(model), (speech, lengths), out_dir / "stream_encoder.onnx",
                ["speech", "speech_lengths"], ["enc", "enc_len", "alphas", *ctc_out],
                {"speech": {0: "batch", 1: "frames"}, "speech_lengths": {0: "batch"},
                 "enc": {0: "batch", 1: "frames"}, "enc_len": {0: "batch"}, "alphas": {0: "batch", 1: "frames"},
                 **ctc_axes})
        enc = torch.randn(1, 40, d)
        emb = torch.randn(1, 7, d)
        _export(_StreamDecoder(model), (enc, lengths, emb, torch.tensor([7], dtype=torch.int32)),
                out_dir / "stream_decoder.onnx", ["enc", "enc_len", "acoustic_embeds", "acoustic_embeds_len"],
                ["logits"],
                {"enc": {0: "batch", 1: "frames"}, "enc_len": {0: "batch"},
                 "acoustic_embeds": {0: "batch", 1: "tokens"}, "acoustic_embeds_len": {0: "batch"},
                 "logits": {0: "batch", 1: "tokens"}})
    for name in ("model", "stream_encoder", "stream_decoder") if offline else ("stream_encoder", "stream_decoder"):
        written.append(out_dir / f"{name}.onnx")
        if quantized:
            quantize(out_dir / f"{name}.onnx", out_dir / f"{name}_quant.onnx")
            written.append(out_dir / f"{name}_quant.onnx")
    return written


def is_bpe_vocabulary(tokens: TokenList) -> bool:
    """True for a SentencePiece vocabulary: some piece starts with ``▁`` (a word start)."""
    return any(t.startswith(SPM_SPACE) for t in tokens.tokens)


def write_config(model: Paraformer, out_dir: Path, frontend: FrontendOptions, *, quantized: bool = True,
                 extra: dict[str, Any] | None = None, tokens: TokenList | None = None) -> Path:
    """``config.yaml`` in FunASR's layout (plus a ``simulsub`` section for the streaming graphs); with ``tokens``
    of SentencePiece pieces (``▁word``) it also carries ``lang: en-bpe`` for funasr_onnx."""
    c = model.config
    streaming: dict[str, Any] = {"encoder": "stream_encoder.onnx", "decoder": "stream_decoder.onnx"}
    if quantized:
        streaming.update(encoder_quant="stream_encoder_quant.onnx", decoder_quant="stream_decoder_quant.onnx")
    conf = {
        "model": "Paraformer",
        "model_conf": {"predictor_bias": c.predictor_bias, "predictor_weight": c.predictor_weight,
                       "sampling_ratio": c.sampling_ratio, "ctc_weight": c.ctc_weight, "lsm_weight": c.label_smoothing},
        "encoder": "SANMEncoder",
        "encoder_conf": {"output_size": c.d_model, "attention_heads": c.heads, "linear_units": c.ffn_dim,
                         "num_blocks": c.encoder_layers, "kernel_size": c.fsmn_kernel, "input_size": c.input_dim},
        "decoder": "ParaformerSANMDecoder",
        "decoder_conf": {"attention_heads": c.heads, "linear_units": c.ffn_dim, "num_blocks": c.decoder_layers,
                         "kernel_size": c.fsmn_kernel},
        "predictor": "CifPredictor",
        "predictor_conf": {"idim": c.d_model, "threshold": c.threshold, "tail_threshold": c.tail_threshold,
                           "l_order": 1, "r_order": 1},
        "frontend": "WavFrontend",
        "frontend_conf": frontend.to_config(),
        "tokenizer": "SentencePieceTokenizer",
        "tokenizer_conf": {"bpemodel": "tokens.model"},
        **({"lang": BPE_LANG} if tokens is not None and is_bpe_vocabulary(tokens) else {}),
        "simulsub": {"streaming": streaming, "architecture": c.to_dict(),
                     "decoding": DecodeOptions().to_config() if model.ctc is not None else
                     {**DecodeOptions().to_config(), "ctc_weight": 0.0, "skip_penalty": 0.0},
                     **(extra or {})},
    }
    path = out_dir / "config.yaml"
    path.write_text(yaml.safe_dump(conf, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def export_directory(model: Paraformer, out_dir: Path, *, frontend: FrontendOptions, cmvn: Cmvn,
                     tokens: TokenList, spm_model: Path | None = None, quantized: bool = True,
                     extra: dict[str, Any] | None = None) -> Path:
    """Write a complete model directory the runtime (and FunASR's ``funasr_onnx``) can load."""
    if len(tokens) != model.config.vocab_size:
        raise ValueError(f"{len(tokens)} tokens but the model has vocab_size {model.config.vocab_size}")
    export_onnx(model, out_dir, quantized=quantized)
    write_config(model, out_dir, frontend, quantized=quantized, extra=extra, tokens=tokens)
    write_am_mvn(cmvn, out_dir / "am.mvn")
    tokens.save(out_dir / "tokens.json")
    if spm_model is not None:
        (out_dir / "tokens.model").write_bytes(spm_model.read_bytes())
    logger.info("exported Paraformer to %s", out_dir)
    return out_dir


@dataclass
class ParaformerExporter:
    """A Paraformer with its frontend, CMVN and tokens → the FunASR-layout directory (:func:`export_directory`).

    ``quantization``: ``None`` writes the fp32 graphs; ``"int8"`` adds their ``*_quant.onnx`` versions.
    ``config.yaml`` marks an existing export.
    """

    model: Paraformer
    tokens: TokenList
    cmvn: Cmvn
    frontend: FrontendOptions = field(default_factory=FrontendOptions)
    spm_model: Path | None = None
    extra: dict[str, Any] | None = None

    family: ClassVar[str] = "paraformer"
    quantizations: ClassVar[tuple[str | None, ...]] = (None, "int8")

    def export(self, output_dir: Path | str, *, quantization: str | None = "int8", force: bool = False) -> Path:
        """Write the model directory ``output_dir`` (see :class:`models.export_registry.ModelExporter`)."""
        check_quantization(self, quantization)
        out = Path(output_dir)
        refuse_overwrite(out / "config.yaml", force)
        return export_directory(self.model, out, frontend=self.frontend, cmvn=self.cmvn, tokens=self.tokens,
                                spm_model=self.spm_model, quantized=quantization == "int8", extra=self.extra)
