"""Export our default decoder-only model (``MarianForCausalLM``) to one ONNX graph with its KV cache as input and
output, so the LLM policy runs on onnxruntime without torch or transformers.

The graph (batch 1, opset 17) — one step of the interleaved sequence:

- inputs ``input_ids`` int64 ``[1, T]`` (the new tokens) and ``past`` float32 ``[L, 2, H, P, D]`` (keys and values
  of the ``P`` tokens already in the sequence; ``P`` may be 0);
- outputs ``logits`` float32 ``[V]`` (the next-token scores after the last new token) and ``present``
  ``[L, 2, H, P + T, D]``.

Positions start at ``P``, so feeding a sequence in pieces gives the same scores as feeding it whole (checked
against transformers on export). ``model_quant.onnx`` is the dynamic int8 quantisation (weights int8 per
tensor); the exported directory keeps ``config.json`` and the tokenizer files, so it is still a model directory
every ``--llm-model`` loader accepts. Other architectures (a Qwen, a Llama) run through transformers instead.
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from models.export_registry import check_quantization, refuse_overwrite
from models.llm.onnx_runtime import GRAPH_INFO, ONNX_FP32, ONNX_INT8, cache_shape
from streaming.errors import ModelBuildError

logger = logging.getLogger(__name__)

OPSET = 17
COPIED_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                "generation_config.json", "training.json", "README.md")


class ExportError(ModelBuildError):
    """The model cannot be exported to the cached-step ONNX graph."""


def unsupported_reason(config: Any) -> str | None:
    """Why a causal-LM config cannot be exported to the cached-step graph, or None when it can."""
    if getattr(config, "model_type", "") != "marian" or getattr(config, "is_encoder_decoder", True):
        return ("the ONNX export covers decoder-only Marian models (our default LLM); run other causal LMs "
                "through transformers")
    if config.activation_function != "relu":
        return f"activation {config.activation_function!r} is not supported by the export (relu only)"
    return None


class MarianCachedStep(nn.Module):
    """One cached step of a ``MarianForCausalLM`` (post-norm layers, sinusoidal positions, tied output layer)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        cfg = model.config
        reason = unsupported_reason(cfg)
        if reason:
            raise ExportError(reason)
        dec = model.model.decoder
        self.embed: nn.Module = dec.embed_tokens
        self.embed_scale = float(dec.embed_scale)
        self.positions: Tensor
        self.register_buffer("positions", dec.embed_positions.weight.detach().clone(), persistent=False)
        self.layers: nn.ModuleList = dec.layers
        self.lm_head: nn.Module = model.lm_head
        self.heads = int(cfg.decoder_attention_heads)
        self.head_dim = int(cfg.d_model) // self.heads
        self.scaling = self.head_dim ** -0.5

    def _attention(self, layer: Any, x: Tensor, past_k: Tensor, past_v: Tensor, mask: Tensor
                   ) -> tuple[Tensor, Tensor, Tensor]:
        att = layer.self_attn
        t = x.shape[0]
        q = att.q_proj(x).reshape(t, self.heads, self.head_dim).transpose(0, 1)  # [H, T, D]
        k = att.k_proj(x).reshape(t, self.heads, self.head_dim).transpose(0, 1)
        v = att.v_proj(x).reshape(t, self.heads, self.head_dim).transpose(0, 1)
        k = torch.cat([past_k, k], dim=1)  # [H, P + T, D]
        v = torch.cat([past_v, v], dim=1)
        scores = torch.matmul(q * self.scaling, k.transpose(1, 2)) + mask  # [H, T, P + T]
        out = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(0, 1).reshape(t, -1)
        return att.out_proj(out), k, v

    def forward(self, input_ids: Tensor, past: Tensor) -> tuple[Tensor, Tensor]:
        ids = input_ids[0]
        t = ids.shape[0]
        p = past.shape[3]
        pos = torch.arange(t, dtype=torch.long) + p
        x = self.embed(ids) * self.embed_scale + self.positions.index_select(0, pos)  # [T, d]
        cols = torch.arange(p + t, dtype=torch.long).unsqueeze(0)
        mask = (cols > pos.unsqueeze(1)).to(x.dtype) * -1e9  # a new token sees the past and itself
        present = []
        layer: Any
        for i, layer in enumerate(self.layers):
            a, k, v = self._attention(layer, x, past[i, 0], past[i, 1], mask)
            x = layer.self_attn_layer_norm(x + a)
            x = layer.final_layer_norm(x + layer.fc2(torch.relu(layer.fc1(x))))
            present.append(torch.stack([k, v]))
        return self.lm_head(x[-1]), torch.stack(present)


def _hf_logits(model: Any, ids: list[int]) -> np.ndarray:
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float().numpy()


def export_dir(hf_dir: Path, out_dir: Path, *, keep_fp32: bool = False, check_ids: list[int] | None = None
               ) -> dict[str, Any]:
    """Export the model in ``hf_dir`` to ``out_dir`` (``model_quant.onnx`` + config and tokenizer files; the fp32
    graph too with ``keep_fp32``). Both graphs are checked against transformers, feeding ``check_ids`` in three
    pieces through the cache; returns the largest logit differences."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32).eval()
    step = MarianCachedStep(model).eval()
    config = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in COPIED_FILES:
        if (hf_dir / name).is_file() and hf_dir.resolve() != out_dir.resolve():
            shutil.copy2(hf_dir / name, out_dir / name)
    fp32 = out_dir / ONNX_FP32
    dummy_ids = torch.tensor([[5, 6, 7]], dtype=torch.long)
    dummy_past = torch.zeros(cache_shape(config, 2))
    with torch.no_grad():
        torch.onnx.export(step, (dummy_ids, dummy_past), str(fp32), input_names=["input_ids", "past"],
                          output_names=["logits", "present"],
                          dynamic_axes={"input_ids": {1: "T"}, "past": {3: "P"}, "present": {3: "P_plus_T"}},
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)
    int8 = out_dir / ONNX_INT8
    quantize_dynamic(str(fp32), str(int8), per_channel=False, weight_type=QuantType.QInt8)
    ids = check_ids or list(range(10, 40))
    reference = _hf_logits(model, ids)[-1]
    report: dict[str, Any] = {"opset": OPSET, "checked_tokens": len(ids)}
    for label, path in (("fp32", fp32), ("int8", int8)):
        logits = run_in_pieces(path, config, ids)
        report[f"max_abs_diff_{label}"] = float(np.abs(logits - reference).max())
        report[f"same_argmax_{label}"] = bool(int(logits.argmax()) == int(reference.argmax()))
    if report["max_abs_diff_fp32"] > 1e-3 * max(1.0, float(np.abs(reference).max())):
        raise ExportError(f"the fp32 graph disagrees with transformers: {report['max_abs_diff_fp32']:.3g}")
    if not keep_fp32:
        fp32.unlink()
    (out_dir / GRAPH_INFO).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    logger.info("exported %s → %s (%.1f MB int8): %s", hf_dir, out_dir, int8.stat().st_size / 1e6, report)
    return report


@dataclass
class LlmExporter:
    """A Hugging Face decoder-only Marian directory → the ONNX cached-step directory (:func:`export_dir`).

    ``quantization``: only ``"int8"`` (``model_quant.onnx``); ``keep_fp32`` keeps ``model.onnx`` too;
    ``check_ids``: the tokens both graphs are checked on. ``model_quant.onnx`` marks an existing export.
    """

    hf_dir: Path
    keep_fp32: bool = False
    check_ids: list[int] | None = None

    family: ClassVar[str] = "llm"
    quantizations: ClassVar[tuple[str | None, ...]] = ("int8",)

    def export(self, output_dir: Path | str, *, quantization: str | None = "int8", force: bool = False) -> Path:
        """Write the ONNX directory ``output_dir`` (see :class:`models.export_registry.ModelExporter`)."""
        check_quantization(self, quantization)
        out = Path(output_dir)
        refuse_overwrite(out / ONNX_INT8, force)
        export_dir(self.hf_dir, out, keep_fp32=self.keep_fp32, check_ids=self.check_ids)
        return out


def run_in_pieces(path: Path, config: dict[str, Any], ids: list[int]) -> np.ndarray:
    """Scores after ``ids`` fed through ``path`` in three pieces, each reusing the previous piece's cache."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    past = np.zeros(cache_shape(config, 0), dtype=np.float32)
    cut = [0, len(ids) // 3, 2 * len(ids) // 3, len(ids)]
    logits = np.zeros(0, dtype=np.float32)
    for a, b in itertools.pairwise(cut):
        logits, past = sess.run(None, {"input_ids": np.array([ids[a:b]], dtype=np.int64), "past": past})
    return np.asarray(logits)

