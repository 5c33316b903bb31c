"""Grow a Paraformer checkpoint deeper without changing what it computes, so a run that underfits can go on.

New encoder and decoder layers go on top of the existing ones (before the final layer norms). Each is made an
exact identity of the residual stream: the encoder layer's value projection and attention output projection are
zero (SAN-M adds the FSMN memory of the values outside the output projection, so both must be), its feed-forward
output projection is zero; a decoder layer's FSMN kernel, cross-attention output and feed-forward output are
zero. Every zeroed matrix still gets a gradient on the first step (from the residual input or the FSMN memory),
so the new layers start learning at once while the grown model scores exactly what the old one did.

The optimiser state is carried over parameter by parameter (by name); the new layers start with none, as AdamW
expects of fresh parameters. Used by ``simulsub train paraformer --grow``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from models.asr.paraformer.model import (
    TRAINING_ONLY_SETTINGS,
    CrossAttention,
    EncoderLayer,
    FeedForward,
    Paraformer,
    ParaformerConfig,
)

logger = logging.getLogger(__name__)

GROWABLE = ("encoder_layers", "decoder_layers")


def growth(old: ParaformerConfig, new: ParaformerConfig) -> dict[str, tuple[int, int]]:
    """The layer counts that grow from ``old`` to ``new`` (``{name: (old, new)}``); empty when none does.

    Raises ``ValueError`` when a count shrinks: layers are never dropped."""
    changes = {k: (getattr(old, k), getattr(new, k)) for k in GROWABLE if getattr(old, k) != getattr(new, k)}
    for k, (a, b) in changes.items():
        if b < a:
            raise ValueError(f"cannot shrink {k} from {a} to {b}: only growing is supported")
    return changes


def _zero(*modules: nn.Module) -> None:
    with torch.no_grad():
        for m in modules:
            for p in m.parameters():
                p.zero_()


def make_identity_layers(model: Paraformer, encoder_from: int, decoder_from: int) -> None:
    """Zero the output paths of encoder layers ``encoder_from…`` and decoder layers ``decoder_from…`` so each
    passes its input through unchanged (see the module docstring)."""
    d = model.config.d_model
    with torch.no_grad():
        for layer in list(model.encoder.layers)[encoder_from:]:
            assert isinstance(layer, EncoderLayer)
            layer.att.qkv.weight[2 * d :].zero_()  # values: the FSMN memory (and v itself) is added past `out`
            layer.att.qkv.bias[2 * d :].zero_()
            _zero(layer.att.out, layer.ffn.w2)
    dec = model.decoder
    for i in range(decoder_from, model.config.decoder_layers):
        cross, ffn = dec.cross[i], dec.ffn[i]
        assert isinstance(cross, CrossAttention) and isinstance(ffn, FeedForward)
        _zero(dec.fsmn[i], cross.out, ffn.w2)


def grow_checkpoint(checkpoint: dict[str, Any], config: ParaformerConfig, *, seed: int = 1) -> dict[str, Any]:
    """A copy of ``checkpoint`` (a ``last.pt`` dict: model, optim, state, config, …) whose model has the layer
    counts of ``config``; every other weight-shaping setting must match. The training position is kept."""
    old_config = ParaformerConfig.from_dict(checkpoint["config"])
    grown = growth(old_config, config)
    shape_keys = [k for k in config.to_dict() if k not in GROWABLE]
    other = [k for k in shape_keys if k not in TRAINING_ONLY_SETTINGS and getattr(old_config, k) != getattr(config, k)]
    if other:
        raise ValueError(f"--grow adds layers only; these settings differ from the checkpoint: {', '.join(other)}")
    old_model = Paraformer(old_config)
    old_names = [n for n, _ in old_model.named_parameters()]
    torch.manual_seed(seed)
    model = Paraformer(config)
    state = model.state_dict()
    missing = [k for k in checkpoint["model"] if k not in state]
    if missing:
        raise ValueError(f"checkpoint tensors the grown model lacks: {missing[:3]}")
    state.update(checkpoint["model"])
    model.load_state_dict(state)
    make_identity_layers(model, old_config.encoder_layers, old_config.decoder_layers)
    new_index = {n: i for i, (n, _) in enumerate(model.named_parameters())}
    optim = checkpoint["optim"]
    moved = {new_index[old_names[i]]: s for i, s in optim["state"].items()}
    groups = [dict(g) for g in optim["param_groups"]]
    if len(groups) != 1:
        raise ValueError("expected one optimiser parameter group")
    groups[0]["params"] = list(range(len(new_index)))
    out = dict(checkpoint)
    out["model"] = model.state_dict()
    out["optim"] = {"state": moved, "param_groups": groups}
    out["config"] = {**checkpoint["config"], **{k: getattr(config, k) for k in GROWABLE}}
    logger.info("grew %s: %.2f M → %.2f M parameters",
                ", ".join(f"{k} {a}→{b}" for k, (a, b) in grown.items()) or "nothing",
                old_model.num_parameters() / 1e6, model.num_parameters() / 1e6)
    return out
