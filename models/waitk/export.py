"""Export a wait-k model to two ONNX step graphs with explicit caches (fp32 and int8) for ``models.waitk.runtime``.

``encoder.onnx``: ``src_ids`` int64 [1, n] (the tokens of newly read words), ``past`` float [L_enc, 2, 1, h, P, dk]
→ ``present`` [L_enc, 2, 1, h, P + n, dk], ``cross_new`` [L_dec, 2, 1, h, n, dk].

``decoder.onnx``: ``token`` int64 [1, 1], ``past`` [L_dec, 2, 1, h, T, dk], ``cross`` [L_dec, 2, 1, h, S, dk]
→ ``logits`` [1, V], ``present`` [L_dec, 2, 1, h, T + 1, dk].

Directory: ``encoder.onnx``, ``decoder.onnx``, ``encoder_int8.onnx``, ``decoder_int8.onnx`` (dynamic int8
weights), ``source.spm`` and ``config.json`` (``format: simulsub-waitk``).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from models.export_registry import check_quantization
from models.waitk.model import EOS_ID, WaitkConfig, WaitkModel

logger = logging.getLogger(__name__)

OPSET = 17
FORMAT = "simulsub-waitk"


class _Encoder(nn.Module):
    def __init__(self, model: WaitkModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, src_ids: Tensor, past: Tensor) -> tuple[Tensor, Tensor]:
        return self.model.encoder_step(src_ids, past)


class _Decoder(nn.Module):
    def __init__(self, model: WaitkModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, token: Tensor, past: Tensor, cross: Tensor) -> tuple[Tensor, Tensor]:
        return self.model.decoder_step(token, past, cross)


def _export(module: nn.Module, args: tuple[Tensor, ...], path: Path, inputs: list[str], outputs: list[str],
            axes: dict[str, dict[int, str]]) -> None:
    with torch.no_grad():
        torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs, dynamic_axes=axes,
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)


def config_dict(cfg: WaitkConfig) -> dict[str, Any]:
    d: dict[str, Any] = asdict(cfg)
    d.update(format=FORMAT, pad_id=cfg.pad_id, eos_id=EOS_ID, decoder_start_id=cfg.pad_id, head_dim=cfg.head_dim,
             schedule="g(t) = min(k + t - 1, |x|), t = target word, reads = source words")
    return d


def convert(model: WaitkModel, spm_path: Path | str, output_dir: Path | str, *, quantization: str | None = "int8",
            force: bool = False) -> Path:
    """Write the runtime directory of ``model``; refuses to overwrite unless ``force``."""
    if quantization not in (None, "int8"):
        raise ValueError(f"quantization must be None or 'int8', not {quantization!r}")
    out = Path(output_dir)
    if (out / "encoder.onnx").exists() and not force:
        raise FileExistsError(f"{out / 'encoder.onnx'} exists; pass force=True to overwrite")
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    cfg = model.cfg
    h, dk = cfg.heads, cfg.head_dim
    src = torch.tensor([[5, 6, 7]], dtype=torch.long).clamp(max=cfg.vocab_size - 2)
    past_e = torch.zeros(cfg.encoder_layers, 2, 1, h, 2, dk)
    _export(_Encoder(model), (src, past_e), out / "encoder.onnx", ["src_ids", "past"], ["present", "cross_new"],
            {"src_ids": {1: "n"}, "past": {4: "P"}, "present": {4: "P_n"}, "cross_new": {4: "n"}})
    tok = torch.tensor([[cfg.pad_id]], dtype=torch.long)
    past_d = torch.zeros(cfg.decoder_layers, 2, 1, h, 2, dk)
    cross = torch.zeros(cfg.decoder_layers, 2, 1, h, 4, dk)
    _export(_Decoder(model), (tok, past_d, cross), out / "decoder.onnx", ["token", "past", "cross"],
            ["logits", "present"], {"past": {4: "T"}, "cross": {4: "S"}, "present": {4: "T1"}})
    if quantization == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        for name in ("encoder", "decoder"):
            quantize_dynamic(str(out / f"{name}.onnx"), str(out / f"{name}_int8.onnx"), per_channel=False,
                             weight_type=QuantType.QInt8)
    shutil.copyfile(spm_path, out / "source.spm")
    (out / "config.json").write_text(json.dumps(config_dict(cfg), indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s", out)
    return out


@dataclass
class WaitkExporter:
    """A wait-k model and its SentencePiece model → the runtime directory (:func:`convert`).

    ``quantization``: ``None`` writes ``encoder.onnx`` / ``decoder.onnx`` (fp32); ``"int8"`` adds their
    ``*_int8.onnx`` versions.
    """

    model: WaitkModel
    spm_model: Path | str

    family: ClassVar[str] = "waitk"
    quantizations: ClassVar[tuple[str | None, ...]] = (None, "int8")

    def export(self, output_dir: Path | str, *, quantization: str | None = "int8", force: bool = False) -> Path:
        """Write the runtime directory ``output_dir`` (see :class:`models.export_registry.ModelExporter`)."""
        check_quantization(self, quantization)
        return convert(self.model, self.spm_model, output_dir, quantization=quantization, force=force)
