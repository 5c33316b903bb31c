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

A NAT may have fewer layers than the model it starts from (a faster student): it then takes evenly spaced source
layers, always the first and the last (:func:`spread_layers`). A trained NAT work directory can be the source as
well (:func:`init_from_nat`), which is how a shallower NAT is fine-tuned from the default one.
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
from streaming.errors import ModelBuildError

logger = logging.getLogger(__name__)


class ArInitError(ModelBuildError):
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


def spread_layers(have: int, want: int) -> list[int]:
    """Indices of ``want`` of ``have`` layers, evenly spaced, first and last included (3 → 2: [0, 2])."""
    if not 0 < want <= have:
        raise ArInitError(f"cannot initialise {want} layers from a model with {have}")
    if want == 1:
        return [have - 1]
    return [round(i * (have - 1) / (want - 1)) for i in range(want)]


def is_nat_work_dir(source: Path) -> bool:
    """True when ``source`` holds NAT training checkpoints (``epochNN.pt`` with a NAT config, no ``arch.json``)."""
    if (source / "arch.json").is_file():
        return False
    ckpts = sorted(source.glob("epoch*.pt"))
    if not ckpts:
        return False
    head = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
    return isinstance(head, dict) and "upsample" in head.get("config", {})


def load_nat_state(source: Path, average_last: int = 3) -> tuple[dict[str, Tensor], ModelConfig]:
    """The mean of the last ``average_last`` epoch checkpoints of a NAT work directory, and its config."""
    ckpts = sorted(source.glob("epoch*.pt"))[-average_last:]
    if not ckpts:
        raise ArInitError(f"{source} holds no NAT checkpoints (epochNN.pt)")
    cfg = ModelConfig(**torch.load(ckpts[-1], map_location="cpu", weights_only=False)["config"])
    return average_state_dicts(ckpts), cfg


def init_from_nat(model: NATModel, sd: dict[str, Tensor], source_cfg: ModelConfig) -> NATModel:
    """Copy a trained NAT's weights into ``model`` (same width and vocabulary, as many or fewer layers)."""
    cfg = model.cfg
    same = ("vocab_size", "d_model", "heads", "ffn_dim", "upsample", "norm_first", "position_layout")
    diff = [k for k in same if getattr(cfg, k) != getattr(source_cfg, k)]
    if diff:
        raise ArInitError(f"the source NAT differs in {', '.join(diff)}: only the layer counts may change")
    enc = spread_layers(source_cfg.encoder_layers, cfg.encoder_layers)
    dec = spread_layers(source_cfg.decoder_layers, cfg.decoder_layers)
    out: dict[str, Tensor] = {}
    for key in model.state_dict():
        part, _, rest = key.partition(".")
        if part in ("encoder", "decoder") and rest[:1].isdigit():
            i, _, tail = rest.partition(".")
            src_i = (enc if part == "encoder" else dec)[int(i)]
            out[key] = sd[f"{part}.{src_i}.{tail}"]
        else:
            out[key] = sd[key]
    model.load_state_dict(out)
    logger.info("NAT layers from the source: encoder %s, decoder %s", enc, dec)
    return model


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
    if cfg.encoder_layers > n_enc or cfg.decoder_layers > n_dec:
        raise ArInitError(f"AR has {n_enc}+{n_dec} layers, the NAT {cfg.encoder_layers}+{cfg.decoder_layers} "
                          "(a NAT may have fewer layers, not more)")
    table = sd.get("model.encoder.embed_positions.weight")
    if table is not None and not torch.allclose(table, model.pe[: table.shape[0]], atol=1e-4):
        raise ArInitError("AR position table differs from the NAT's 'halves' sinusoids")
    with torch.no_grad():
        model.embed.weight[: cfg.vocab_size].copy_(shared[: cfg.vocab_size])
        model.embed.weight[cfg.pad_id].zero_()
        d = cfg.d_model
        model.up.weight.copy_(torch.eye(d).repeat(cfg.upsample, 1))  # each copy starts as the encoder state
        model.up.bias.zero_()
    for block, i in zip(model.encoder, spread_layers(n_enc, cfg.encoder_layers), strict=True):
        _copy_layer(block, sd, f"model.encoder.layers.{i}", cross=False)
    for block, i in zip(model.decoder, spread_layers(n_dec, cfg.decoder_layers), strict=True):
        _copy_layer(block, sd, f"model.decoder.layers.{i}", cross=True)
    return model
