"""The models ``simulsub train llm-simt`` starts from: our small default, or any local causal LM.

Default: a ``transformers`` ``MarianForCausalLM`` (a decoder-only stack of Marian layers: post-norm, sinusoidal
positions, tied embeddings) as deep as the AR model's encoder and decoder together, initialised from the AR
model (``simulsub train marian`` work directory): the shared embeddings (same SentencePiece ids), the lower
layers from the AR encoder (they learnt to read English), the upper layers from the AR decoder (they learnt to
write German; their cross-attention weights stay unused, as a decoder-only model has no encoder). Why this and
not a small Llama: every weight but the position-independent layer wiring starts trained, which is what makes
training on two CPU cores feasible; the result is still a plain Hugging Face causal LM any loader can run.

Any other local Hugging Face causal LM directory (a Qwen, a Llama) can be the base instead: the control tokens
are added to its tokenizer and its embeddings are resized.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from models.llm.tokens import add_control_tokens, tokenizer_from_spm
from streaming.errors import ModelBuildError

logger = logging.getLogger(__name__)


class BaseModelError(ModelBuildError):
    """The base model or the AR work directory cannot be used."""


def default_config(arch: dict[str, Any], vocab_size: int, pad_id: int, eos_id: int, max_positions: int = 512) -> Any:
    """The ``MarianConfig`` of the default decoder-only model for an AR ``arch.json``."""
    from transformers import MarianConfig

    layers = int(arch["encoder_layers"]) + int(arch["decoder_layers"])
    decoder_only: dict[str, Any] = {"is_decoder": True, "is_encoder_decoder": False, "add_cross_attention": False}
    return MarianConfig(
        **decoder_only,
        vocab_size=vocab_size, d_model=int(arch["d_model"]), decoder_layers=layers, encoder_layers=0,
        decoder_attention_heads=int(arch["heads"]), decoder_ffn_dim=int(arch["ffn_dim"]),
        max_position_embeddings=max_positions,
        pad_token_id=pad_id, eos_token_id=eos_id, bos_token_id=None, decoder_start_token_id=pad_id,
        forced_eos_token_id=None, tie_word_embeddings=True, scale_embedding=True, dropout=float(arch["dropout"]),
        attention_dropout=0.0, activation_function="relu", share_encoder_decoder_embeddings=True,
    )


def _copy(dst: torch.Tensor, src: torch.Tensor, name: str) -> None:
    if dst.shape != src.shape:
        raise BaseModelError(f"{name}: AR shape {tuple(src.shape)} ≠ {tuple(dst.shape)}")
    with torch.no_grad():
        dst.copy_(src)


def build_default(ar_dir: Path, spm_file: Path, *, average_last: int = 5) -> tuple[Any, Any]:
    """The default decoder-only model initialised from the AR work directory, and its tokenizer."""
    from transformers import MarianForCausalLM

    from models.marian.export import average_state_dicts

    arch_file = ar_dir / "arch.json"
    ckpts = sorted(ar_dir.glob("epoch*.pt"))[-average_last:]
    if not arch_file.is_file() or not ckpts:
        raise BaseModelError(f"{ar_dir} holds no AR checkpoints (epochNN.pt + arch.json): run `simulsub train "
                             "marian` first, or pass --base DIR (a Hugging Face causal LM)")
    arch = json.loads(arch_file.read_text(encoding="utf-8"))
    tok = tokenizer_from_spm(spm_file)
    cfg = default_config(arch, len(tok), int(tok.pad_token_id), int(tok.eos_token_id))
    torch.manual_seed(0)
    model = MarianForCausalLM(cfg)
    sd = average_state_dicts(ckpts)
    emb = model.model.decoder.embed_tokens.weight
    shared = sd["model.shared.weight"]
    n = min(shared.shape[0], emb.shape[0])
    with torch.no_grad():
        emb[:n].copy_(shared[:n])
        emb[int(tok.pad_token_id)].zero_()
    n_enc = int(arch["encoder_layers"])
    layers = model.model.decoder.layers
    for i in range(n_enc):
        src, dst = f"model.encoder.layers.{i}", layers[i]
        for part in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
                     "self_attn_layer_norm", "fc1", "fc2", "final_layer_norm"):
            mod = dst.get_submodule(part)
            _copy(mod.weight, sd[f"{src}.{part}.weight"], f"{src}.{part}")
            _copy(mod.bias, sd[f"{src}.{part}.bias"], f"{src}.{part}")
    for i in range(int(arch["decoder_layers"])):
        prefix = f"model.decoder.layers.{i}."
        own = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        missing, unexpected = layers[n_enc + i].load_state_dict(own, strict=False)
        if missing or unexpected:
            raise BaseModelError(f"AR decoder layer {i} does not fit: missing {missing}, unexpected {unexpected}")
    logger.info("default LLM: %d layers (%d from the AR encoder, %d from its decoder), %.2f M parameters",
                len(layers), n_enc, len(layers) - n_enc, sum(p.numel() for p in model.parameters()) / 1e6)
    return model, tok


def load_base(base_dir: Path) -> tuple[Any, Any]:
    """A local Hugging Face causal LM and its tokenizer, with the control tokens added (embeddings resized)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (base_dir / "config.json").is_file():
        raise BaseModelError(f"{base_dir} is not a Hugging Face model directory (no config.json)")
    try:
        tok = AutoTokenizer.from_pretrained(str(base_dir))
        model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    except (OSError, ValueError, KeyError) as e:
        raise BaseModelError(f"cannot load {base_dir} as a causal LM: {e}") from None
    if add_control_tokens(tok):
        model.resize_token_embeddings(len(tok))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok
