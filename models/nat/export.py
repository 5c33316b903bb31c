"""Export a trained NAT to ONNX (fp32 and int8) for ``models.nat.runtime``, which loads it without torch.

The graph takes ``src_ids`` int64 [1, S] (SentencePiece ids ending with ``</s>``; dynamic S) and ``vocab_ids``
int64 [K] (the output classes to score: ``arange(V + 1)`` or a lexical shortlist holding the blank) and returns
``tokens`` int64 [1, S·upsample]: the argmax class per decoder position, computed INSIDE the graph so the
[T, K] logits never leave the session. The CTC collapse (merge repeats, drop blanks) runs in numpy.

Output directory: ``model.onnx`` (fp32), ``model_int8.onnx`` (dynamic int8 weights, when asked), ``source.spm``
(copy of the joint SentencePiece model) and ``config.json`` (ModelConfig fields + blank/pad ids + upsample +
max_source_tokens).
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
from models.nat.model import ModelConfig, NATModel
from models.nat.shortlist import FILE_NAME as SHORTLIST_FILE
from models.nat.shortlist import Shortlist

logger = logging.getLogger(__name__)

OPSET = 17
FP32_NAME = "model.onnx"
INT8_NAME = "model_int8.onnx"


class _ArgmaxWrapper(nn.Module):
    """(src_ids [1, S], vocab_ids [K]) → tokens [1, S·upsample]: argmax over the classes in ``vocab_ids`` only.

    ``vocab_ids`` (int64, must contain the blank) selects the rows of the tied output layer to score: all
    ``V + 1`` classes (``arange``) or a lexical shortlist (``models.nat.shortlist``); the argmax is mapped
    back to full ids inside the graph.
    """

    def __init__(self, model: NATModel, refinements: int = 0) -> None:
        super().__init__()
        self.model = model
        self.refinements = refinements

    def forward(self, src_ids: Tensor, vocab_ids: Tensor) -> Tensor:
        states = self.model.states(src_ids, None, refinements=self.refinements, vocab=vocab_ids)
        weight = self.model.embed.weight.index_select(0, vocab_ids)  # [K, d]
        best = torch.matmul(states, weight.t()).argmax(-1)  # [1, T] positions into vocab_ids
        return vocab_ids.index_select(0, best.reshape(-1)).reshape(best.shape)


def export_onnx(model: NATModel, path: Path, refinements: int = 0) -> Path:
    """Write the fp32 ONNX graph of ``model`` (eval mode, batch 1, dynamic source length) to ``path``;
    ``refinements`` extra decoder passes are unrolled into the graph."""
    model = model.eval()
    dummy = torch.tensor([[5, 6, 7, 8, 1]], dtype=torch.long).clamp(max=model.cfg.vocab_size - 1)
    vocab = torch.arange(model.cfg.num_classes, dtype=torch.long)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            _ArgmaxWrapper(model, refinements),
            (dummy, vocab),
            str(path),
            input_names=["src_ids", "vocab_ids"],
            output_names=["tokens"],
            dynamic_axes={"src_ids": {1: "S"}, "vocab_ids": {0: "K"}, "tokens": {1: "T"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    logger.info("exported %s", path)
    return path


def quantize_int8(fp32_path: Path, int8_path: Path) -> Path:
    """Dynamic int8 quantisation of weights (QInt8, per tensor); activations are quantised at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32_path), str(int8_path), per_channel=False, weight_type=QuantType.QInt8)
    logger.info("quantised %s → %s", fp32_path, int8_path)
    return int8_path


def config_dict(cfg: ModelConfig) -> dict[str, Any]:
    """What the runtime needs to know, JSON-ready."""
    d: dict[str, Any] = asdict(cfg)
    d.update(
        blank_id=cfg.blank_id,
        pad_id=cfg.pad_id,
        eos_id=1,
        max_source_tokens=cfg.max_source_tokens,
        format="simulsub-nat-ctc",
        inputs=["src_ids", "vocab_ids"],
        output="tokens",
    )
    return d


def convert(
    model: NATModel,
    spm_path: Path | str,
    output_dir: Path | str,
    *,
    quantization: str | None = None,
    force: bool = False,
    shortlist: Shortlist | None = None,
    refinements: int = 0,
) -> Path:
    """Write a runtime model directory for ``model``; returns it.

    ``quantization``: None (fp32 only) or ``"int8"`` (fp32 + int8). Refuses to overwrite an existing
    ``model.onnx`` unless ``force``. ``shortlist`` is saved as ``shortlist.npz`` (the runtime then uses it).
    ``refinements``: extra decoder passes baked into the graphs (0 = one parallel pass).
    """
    if quantization not in (None, "int8"):
        raise ValueError(f"quantization must be None or 'int8', not {quantization!r}")
    out = Path(output_dir)
    if (out / FP32_NAME).exists() and not force:
        raise FileExistsError(f"{out / FP32_NAME} exists; pass force=True to overwrite")
    out.mkdir(parents=True, exist_ok=True)
    fp32 = export_onnx(model, out / FP32_NAME, refinements)
    if quantization == "int8":
        quantize_int8(fp32, out / INT8_NAME)
    shutil.copyfile(spm_path, out / "source.spm")
    if shortlist is not None:
        shortlist.save(out / SHORTLIST_FILE)
    config = config_dict(model.cfg)
    config["refinements"] = refinements
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return out


@dataclass
class NatExporter:
    """A NAT and its SentencePiece model → the runtime directory (:func:`convert`).

    ``quantization``: ``None`` writes ``model.onnx`` (fp32); ``"int8"`` adds ``model_int8.onnx``. ``shortlist``
    and ``refinements`` as in :func:`convert`.
    """

    model: NATModel
    spm_model: Path | str
    shortlist: Shortlist | None = None
    refinements: int = 0

    family: ClassVar[str] = "nat"
    quantizations: ClassVar[tuple[str | None, ...]] = (None, "int8")

    def export(self, output_dir: Path | str, *, quantization: str | None = "int8", force: bool = False) -> Path:
        """Write the runtime directory ``output_dir`` (see :class:`models.export_registry.ModelExporter`)."""
        check_quantization(self, quantization)
        return convert(self.model, self.spm_model, output_dir, quantization=quantization, force=force,
                       shortlist=self.shortlist, refinements=self.refinements)


def load_checkpoint(path: Path | str) -> NATModel:
    """A NATModel from a checkpoint holding ``{"config": asdict(ModelConfig), "model": state_dict}``."""
    ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    model = NATModel(ModelConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()
