"""Initialise the NAT from the trained AR (Marian) model: same vocabulary, same width, post-norm layers.

Why: the NAT trains on the AR teacher's distilled output and shares its SentencePiece vocabulary; starting from
the teacher's encoder, decoder and embeddings (instead of random weights) reaches the teacher's quality in a few
epochs on two CPU cores. The AR decoder's causal self-attention becomes bidirectional here (the weights are
reused as they are); its token inputs become the upsampled encoder states (``up`` starts as copies of the state).

Mapping (transformers ``MarianMTModel`` names → :class:`models.nat.model.NATModel`):

- ``model.shared`` rows 0..V-1 → ``embed`` rows 0..V-1; the CTC blank row (id V) starts random, pad (V+1) zero;
- ``*.self_attn.{q,k,v,out}_proj`` → ``self_att.q``, ``self_att.kv`` (k and v stacked), ``self_att.o``;
  ``encoder_attn`` likewise → ``cross_att``;
- ``self_attn_layer_norm`` → ``n1``, ``encoder_attn_layer_norm`` → ``n2``, ``final_layer_norm`` → ``n3``,
  ``fc1``/``fc2`` → ``ff.0``/``ff.3``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from models.marian.export import average_state_dicts
from models.nat.model import ModelConfig, NATModel

logger = logging.getLogger(__name__)


class ArInitError(ValueError):
    """The AR checkpoint cannot initialise this NAT (missing, or a different size)."""


def nat_config_like_ar(arch: dict[str, int | float], vocab_size: int, **overrides: object) -> ModelConfig:
    """A post-norm NAT config with the AR model's width, heads, FFN and layer counts (``overrides`` win)."""
    fields: dict[str, object] = dict(
        vocab_size=vocab_size,
        d_model=int(arch["d_model"]),
        heads=int(arch["heads"]),
        ffn_dim=int(arch["ffn_dim"]),
        encoder_layers=int(arch["encoder_layers"]),
        decoder_layers=int(arch["decoder_layers"]),
        norm_first=False,
        position_layout="halves",
    )
    fields.update(overrides)
    return ModelConfig(**fields)  # type: ignore[arg-type]


def load_ar_state(source: Path, average_last: int = 5) -> tuple[dict[str, Tensor], dict[str, int | float]]:
    """The AR state dict and its ``arch.json`` from a Marian work directory (mean of its last epoch checkpoints)."""
    arch_file = source / "arch.json"
    ckpts = sorted(source.glob("epoch*.pt"))[-average_last:]
    if not arch_file.is_file() or not ckpts:
        raise ArInitError(
            f"{source} holds no AR training checkpoints (epochNN.pt + arch.json): run `simulsub train marian` "
            "first, or pass --init-from '' to start the NAT from random weights"
        )
    logger.info("initialising from the mean of %s", ", ".join(p.name for p in ckpts))
    return average_state_dicts(ckpts), json.loads(arch_file.read_text(encoding="utf-8"))


def _copy_attention(dst: Any, sd: dict[str, Tensor], prefix: str) -> None:
    with torch.no_grad():
        dst.q.weight.copy_(sd[f"{prefix}.q_proj.weight"])
        dst.q.bias.copy_(sd[f"{prefix}.q_proj.bias"])
        dst.kv.weight.copy_(torch.cat([sd[f"{prefix}.k_proj.weight"], sd[f"{prefix}.v_proj.weight"]], 0))
        dst.kv.bias.copy_(torch.cat([sd[f"{prefix}.k_proj.bias"], sd[f"{prefix}.v_proj.bias"]], 0))
        dst.o.weight.copy_(sd[f"{prefix}.out_proj.weight"])
        dst.o.bias.copy_(sd[f"{prefix}.out_proj.bias"])


def _copy_norm(dst: Any, sd: dict[str, Tensor], prefix: str) -> None:
    with torch.no_grad():
        dst.weight.copy_(sd[f"{prefix}.weight"])
        dst.bias.copy_(sd[f"{prefix}.bias"])


def _copy_layer(block: Any, sd: dict[str, Tensor], prefix: str, cross: bool) -> None:
    _copy_attention(block.self_att, sd, f"{prefix}.self_attn")
    _copy_norm(block.n1, sd, f"{prefix}.self_attn_layer_norm")
    if cross:
        _copy_attention(block.cross_att, sd, f"{prefix}.encoder_attn")
        _copy_norm(block.n2, sd, f"{prefix}.encoder_attn_layer_norm")
    _copy_norm(block.n3, sd, f"{prefix}.final_layer_norm")
    with torch.no_grad():
        block.ff[0].weight.copy_(sd[f"{prefix}.fc1.weight"])
        block.ff[0].bias.copy_(sd[f"{prefix}.fc1.bias"])
        block.ff[3].weight.copy_(sd[f"{prefix}.fc2.weight"])
        block.ff[3].bias.copy_(sd[f"{prefix}.fc2.bias"])


def init_from_ar(model: NATModel, sd: dict[str, Tensor]) -> NATModel:
    """Copy the AR weights in ``sd`` into ``model`` (in place; returns it). Raises ArInitError on a size mismatch."""
    cfg = model.cfg
    if cfg.norm_first or cfg.position_layout != "halves":
        raise ArInitError("AR initialisation needs a post-norm NAT with Marian's position layout "
                          "(norm_first=False, position_layout='halves')")
    shared = sd.get("model.shared.weight")
    if shared is None or shared.shape[1] != cfg.d_model or shared.shape[0] < cfg.vocab_size:
        got = None if shared is None else tuple(shared.shape)
        raise ArInitError(f"AR embeddings {got} do not fit a NAT with {cfg.vocab_size} pieces × d={cfg.d_model}")
    n_enc = sum(1 for k in sd if k.startswith("model.encoder.layers.") and k.endswith(".fc1.weight"))
    n_dec = sum(1 for k in sd if k.startswith("model.decoder.layers.") and k.endswith(".fc1.weight"))
    if (n_enc, n_dec) != (cfg.encoder_layers, cfg.decoder_layers):
        raise ArInitError(f"AR has {n_enc}+{n_dec} layers, the NAT {cfg.encoder_layers}+{cfg.decoder_layers}")
    table = sd.get("model.encoder.embed_positions.weight")
    if table is not None and not torch.allclose(table, model.pe[: table.shape[0]], atol=1e-4):
        raise ArInitError("AR position table differs from the NAT's 'halves' sinusoids")
    with torch.no_grad():
        model.embed.weight[: cfg.vocab_size].copy_(shared[: cfg.vocab_size])
        model.embed.weight[cfg.pad_id].zero_()
        d = cfg.d_model
        model.up.weight.copy_(torch.eye(d).repeat(cfg.upsample, 1))  # each copy starts as the encoder state
        model.up.bias.zero_()
    for i, block in enumerate(model.encoder):
        _copy_layer(block, sd, f"model.encoder.layers.{i}", cross=False)
    for i, block in enumerate(model.decoder):
        _copy_layer(block, sd, f"model.decoder.layers.{i}", cross=True)
    return model
