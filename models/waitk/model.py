"""wait-k Transformer (STACL, Ma et al. 2019) with a unidirectional encoder and cache-based incremental steps.

Schedule: after reading g source WORDS the model has written the target WORDS t with g(t) = min(k + t − 1, |x|)
≤ g; all subword tokens of a source word are read together, and all tokens of target word t see exactly the
first g(t) source words (so a displayed caption word never depends on a half-read source word). The source
``</s>`` is visible only once the whole source has been read and is known to have ended.

- Encoder: causal self-attention over source tokens, so the states of words already read never change and are
  cached (``encoder_step``: new tokens + past keys/values → present keys/values and the new tokens'
  cross-attention keys/values for every decoder layer).
- Decoder: causal self-attention with a key/value cache plus cross-attention over the cross keys/values of
  the source read so far (``decoder_step``: one token → next-token logits and the grown cache).
- Training (``forward``) applies the wait-k cross-attention mask for any k, so one model serves every k
  (``k`` is sampled per batch, see ``models.waitk.train``).

Layout = the AR model's (``models.marian``): post-norm layers, sinusoidal positions in Marian's "halves" layout,
embeddings scaled by √d and tied to the output layer, ``<pad>`` last (also the decoder start token), ``</s>`` = 1;
so the AR weights initialise it (``init_from_ar``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.nat.model import sinusoidal_table

EOS_ID = 1
FULL_SOURCE = 10**6
"""A k (or word index) large enough to mean 'the whole source'."""


@dataclass(frozen=True)
class WaitkConfig:
    """Model size; ``vocab_size`` counts the pieces plus ``<pad>`` (the last id), as the AR model."""

    vocab_size: int
    d_model: int = 256
    heads: int = 4
    ffn_dim: int = 1024
    encoder_layers: int = 3
    decoder_layers: int = 3
    dropout: float = 0.1
    max_positions: int = 256

    @property
    def pad_id(self) -> int:
        return self.vocab_size - 1

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads


def word_starts(pieces: Sequence[str]) -> list[bool]:
    """True where a SentencePiece piece begins a whitespace-separated word (the first piece always does)."""
    return [i == 0 or p.startswith("\u2581") for i, p in enumerate(pieces)]


def word_index(pieces: Sequence[str]) -> list[int]:
    """0-based word number of each piece."""
    out, w = [], -1
    for start in word_starts(pieces):
        w += int(start)
        out.append(max(w, 0))
    return out


class Attention(nn.Module):
    """Multi-head attention with separate projections (the AR model's names), mask = True where allowed."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.h, self.dk = heads, d // heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.drop = nn.Dropout(dropout)

    def split(self, x: Tensor) -> Tensor:
        """[B, T, d] → [B, h, T, dk]."""
        return x.reshape(x.shape[0], x.shape[1], self.h, self.dk).transpose(1, 2)

    def kv(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.split(self.k_proj(x)), self.split(self.v_proj(x))

    def attend(self, x: Tensor, k: Tensor, v: Tensor, allowed: Tensor | None) -> Tensor:
        """Queries from x [B, Tq, d] over k, v [B, h, Tk, dk]; allowed broadcastable to [B, h, Tq, Tk]."""
        q = self.split(self.q_proj(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.dk))
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        att = self.drop(torch.softmax(scores, dim=-1).nan_to_num(0.0))  # rows with nothing allowed → zeros
        out = torch.matmul(att, v).transpose(1, 2)
        return self.out_proj(out.reshape(out.shape[0], out.shape[1], self.h * self.dk))


class Layer(nn.Module):
    """Post-norm Transformer layer (the AR model's order): self-attention, [cross-attention], feed-forward."""

    def __init__(self, cfg: WaitkConfig, cross: bool) -> None:
        super().__init__()
        d = cfg.d_model
        self.self_attn: Attention = Attention(d, cfg.heads, cfg.dropout)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.encoder_attn: Attention | None = Attention(d, cfg.heads, cfg.dropout) if cross else None
        self.encoder_attn_layer_norm: nn.LayerNorm | None = nn.LayerNorm(d) if cross else None
        self.fc1, self.fc2 = nn.Linear(d, cfg.ffn_dim), nn.Linear(cfg.ffn_dim, d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, k: Tensor, v: Tensor, allowed: Tensor | None,
                cross: tuple[Tensor, Tensor, Tensor | None] | None = None) -> Tensor:
        """x [B, T, d]; k, v: self-attention keys/values (past + these positions); cross: (k, v, allowed)."""
        x = self.self_attn_layer_norm(x + self.drop(self.self_attn.attend(x, k, v, allowed)))
        if cross is not None:
            assert self.encoder_attn is not None and self.encoder_attn_layer_norm is not None
            ck, cv, c_allowed = cross
            x = self.encoder_attn_layer_norm(x + self.drop(self.encoder_attn.attend(x, ck, cv, c_allowed)))
        return self.final_layer_norm(x + self.drop(self.fc2(F.relu(self.fc1(x)))))


def causal(tq: int, past: int, device: torch.device | None = None) -> Tensor:
    """[Tq, past + Tq] True where query i (absolute position past + i) may see key j (j ≤ past + i)."""
    q = torch.arange(tq, device=device)[:, None] + past
    return torch.arange(past + tq, device=device)[None, :] <= q


class WaitkModel(nn.Module):
    """Unidirectional-encoder Transformer trained with wait-k cross-attention masks."""

    pe: Tensor

    def __init__(self, cfg: WaitkConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.embed = nn.Embedding(cfg.vocab_size, d, padding_idx=cfg.pad_id)
        nn.init.normal_(self.embed.weight, std=d**-0.5)
        with torch.no_grad():
            self.embed.weight[cfg.pad_id].zero_()
        self.scale = math.sqrt(d)
        self.register_buffer("pe", sinusoidal_table(cfg.max_positions, d, "halves"), persistent=False)
        self.encoder = nn.ModuleList(Layer(cfg, cross=False) for _ in range(cfg.encoder_layers))
        self.decoder = nn.ModuleList(Layer(cfg, cross=True) for _ in range(cfg.decoder_layers))
        self.drop = nn.Dropout(cfg.dropout)

    @property
    def encoder_layers(self) -> list[Layer]:
        return [cast(Layer, m) for m in self.encoder]

    @property
    def decoder_layers(self) -> list[Layer]:
        return [cast(Layer, m) for m in self.decoder]

    def _inputs(self, ids: Tensor, start: int | Tensor = 0) -> Tensor:
        t = ids.shape[1]
        return self.drop(self.embed(ids) * self.scale + self.pe[start : start + t])

    def logits(self, x: Tensor) -> Tensor:
        return F.linear(x, self.embed.weight)

    # -- training (whole batches, masks) ------------------------------------------------------------
    def encode(self, src: Tensor) -> Tensor:
        """src [B, S] (padded with pad_id) → states [B, S, d]; token j sees tokens ≤ j only."""
        allowed = causal(src.shape[1], 0, src.device)[None, None] & src.ne(self.cfg.pad_id)[:, None, None, :]
        x = self._inputs(src)
        for layer in self.encoder_layers:
            k, v = layer.self_attn.kv(x)
            x = layer(x, k, v, allowed)
        return x

    def forward(self, src: Tensor, src_word: Tensor, n_words: Tensor, tgt_in: Tensor, tgt_word: Tensor,
                k: int | Tensor) -> Tensor:
        """Teacher-forced logits [B, T, V] under wait-k.

        src [B, S] ids (with ``</s>``, padded); src_word [B, S] 0-based word of each source token (``</s>``:
        n_words, padding: ≥ FULL_SOURCE); n_words [B]; tgt_in [B, T] decoder inputs (start token + labels
        shifted); tgt_word [B, T] 1-based target word of each PREDICTED label (``</s>``/padding: FULL_SOURCE);
        k: int or [B] (FULL_SOURCE = full-sentence attention).
        """
        enc = self.encode(src)
        k_t = torch.as_tensor(k, device=src.device).reshape(-1, 1)
        g = torch.minimum(k_t + tgt_word - 1, n_words[:, None])  # [B, T] words visible to each label
        sw = src_word[:, None, :]  # [B, 1, S]
        all_read = g[:, :, None] >= n_words[:, None, None]
        cross_allowed = (sw < g[:, :, None]) | ((sw == n_words[:, None, None]) & all_read)
        cross_allowed = cross_allowed[:, None]  # [B, 1, T, S]
        self_allowed = causal(tgt_in.shape[1], 0, src.device)[None, None]
        x = self._inputs(tgt_in)
        for layer in self.decoder_layers:
            assert layer.encoder_attn is not None
            k_s, v_s = layer.self_attn.kv(x)
            ck, cv = layer.encoder_attn.kv(enc)
            x = layer(x, k_s, v_s, self_allowed, (ck, cv, cross_allowed))
        return self.logits(x)

    # -- incremental steps (batch 1, exported to ONNX) -----------------------------------------------
    def encoder_step(self, src_new: Tensor, past: Tensor) -> tuple[Tensor, Tensor]:
        """Read new source tokens.

        src_new [1, n]; past [L_enc, 2, 1, h, P, dk] (self-attention keys/values of the P tokens read before).
        Returns present [L_enc, 2, 1, h, P + n, dk] and cross_new [L_dec, 2, 1, h, n, dk]: every decoder
        layer's cross-attention keys/values of the n new encoder states (append them to the cross cache).
        """
        p = past.shape[4]
        x = self._inputs(src_new, p)
        allowed = causal(src_new.shape[1], p, src_new.device)[None, None]
        present = []
        for i, layer in enumerate(self.encoder_layers):
            k_new, v_new = layer.self_attn.kv(x)
            k = torch.cat([past[i, 0], k_new], dim=2)
            v = torch.cat([past[i, 1], v_new], dim=2)
            present.append(torch.stack([k, v]))
            x = layer(x, k, v, allowed)
        cross = []
        for layer in self.decoder_layers:
            assert layer.encoder_attn is not None
            cross.append(torch.stack(layer.encoder_attn.kv(x)))
        return torch.stack(present), torch.stack(cross)

    def decoder_step(self, token: Tensor, past: Tensor, cross: Tensor) -> tuple[Tensor, Tensor]:
        """Feed one target token.

        token [1, 1] (the start token first); past [L_dec, 2, 1, h, T, dk]; cross [L_dec, 2, 1, h, S, dk] for the
        source read so far. Returns next-token logits [1, V] and present [L_dec, 2, 1, h, T + 1, dk].
        """
        t = past.shape[4]
        x = self._inputs(token, t)
        present = []
        for i, layer in enumerate(self.decoder_layers):
            k_new, v_new = layer.self_attn.kv(x)
            k = torch.cat([past[i, 0], k_new], dim=2)
            v = torch.cat([past[i, 1], v_new], dim=2)
            present.append(torch.stack([k, v]))
            x = layer(x, k, v, None, (cross[i, 0], cross[i, 1], None))
        return self.logits(x)[:, -1], torch.stack(present)

    def empty_cache(self, layers: int) -> Tensor:
        cfg = self.cfg
        return torch.zeros(layers, 2, 1, cfg.heads, 0, cfg.head_dim)


def init_from_ar(model: WaitkModel, sd: dict[str, Tensor]) -> WaitkModel:
    """Copy a Marian (transformers) state dict of the same size into ``model``; raises ValueError on mismatch."""
    own = model.state_dict()
    mapping = {"embed.weight": "model.shared.weight"}
    for name in own:
        if name.startswith(("encoder.", "decoder.")):
            mapping[name] = f"model.{name.split('.')[0]}.layers.{name.split('.', 1)[1]}"
    missing = [src for src in mapping.values() if src not in sd]
    if missing:
        raise ValueError(f"the AR state lacks {missing[:3]}… (not a Marian model of this size?)")
    bad = [n for n, src in mapping.items() if sd[src].shape != own[n].shape]
    if bad:
        raise ValueError(f"shape mismatch for {bad[:3]}: the AR model has another size")
    model.load_state_dict({n: sd[src] for n, src in mapping.items()}, strict=True)
    return model
