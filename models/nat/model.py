"""CTC-based non-autoregressive Transformer (NAT) with glancing training, for FReTNA re-translation.

Why CTC + glancing rather than CMLM / mask-predict:

- Re-translation calls the model on every source prefix, so one parallel pass must be enough. A CTC NAT has no
  length predictor: the decoder length is fixed to ``upsample`` × source length and CTC marginalises over all
  alignments, so the output length is decided per position (blanks, merged repeats). Mask-predict needs a length
  guess plus several refinement passes to reach the same quality.
- CTC's alignment freedom absorbs the word-order and length mismatches that hurt one-pass NATs most; glancing
  training (GLAT) on top of CTC teaches the decoder target dependencies without a second pass at inference.
- Decoding is an argmax per position followed by a CTC collapse; the argmax sits inside the ONNX graph, so the
  logits never leave the session (see ``models.nat.export``).

Vocabulary (shared source/target, the SAME joint SentencePiece model as the AR model, e.g.
``models/pretrained/marian-en-de/source.spm`` with 8000 pieces):

- ids ``0 .. V-1`` are SentencePiece pieces (0 = ``<unk>``, 1 = ``</s>``);
- ``blank_id = V`` is the CTC blank (an output class and a decoder-input embedding for glancing);
- ``pad_id = V + 1`` pads source batches; it is never predicted (the output layer covers ``V + 1`` classes).

Sources end with ``</s>`` (id 1) like the AR model's; targets carry no ``</s>`` (CTC needs no end marker).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.ctc_alignment import ctc_viterbi_align

logger = logging.getLogger(__name__)

EOS_ID = 1
REFINE_THRESHOLD = 0.9
"""Refinement passes feed back predictions at least this probable (see ``NATModel.states``)."""


@dataclass(frozen=True)
class ModelConfig:
    """NAT size. ``vocab_size`` counts SentencePiece pieces only; blank and pad are appended (see module doc)."""

    vocab_size: int = 8000
    d_model: int = 256
    heads: int = 4
    ffn_dim: int = 1024
    encoder_layers: int = 3
    decoder_layers: int = 3
    upsample: int = 2
    dropout: float = 0.1
    max_positions: int = 1024  # decoder positions (tokens); sources may have max_positions // upsample tokens
    norm_first: bool = True  # pre-norm layers (+ final norms); False: post-norm, the AR (Marian) layout
    position_layout: str = "interleaved"  # sinusoid columns: "interleaved" sin/cos, or "halves" (Marian's)

    @property
    def blank_id(self) -> int:
        return self.vocab_size

    @property
    def pad_id(self) -> int:
        return self.vocab_size + 1

    @property
    def num_classes(self) -> int:
        """Output classes: pieces + blank."""
        return self.vocab_size + 1

    @property
    def max_source_tokens(self) -> int:
        return self.max_positions // self.upsample


def sinusoidal_table(n: int, d: int, layout: str = "interleaved") -> Tensor:
    """[n, d] sinusoidal position encodings (Vaswani et al.).

    ``layout="interleaved"``: sin in even columns, cos in odd ones; ``"halves"``: all sines then all cosines,
    as Marian/transformers' ``MarianSinusoidalPositionalEmbedding`` (so AR weights can initialise the NAT).
    """
    pos = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    if layout == "interleaved":
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)[:, : d // 2]
    elif layout == "halves":
        half = (d + 1) // 2
        pe[:, :half] = torch.sin(pos * div)
        pe[:, half:] = torch.cos(pos * div)[:, : d - half]
    else:
        raise ValueError(f"position_layout must be 'interleaved' or 'halves', not {layout!r}")
    return pe


class _FusedAttention(torch.autograd.Function):
    """Scaled dot-product attention over packed heads, exported as ONE onnxruntime ``MultiHeadAttention`` node.

    A small NAT call is dominated by per-node dispatch cost, and written-out attention is ~20 nodes (reshapes,
    transposes, two MatMuls, softmax, shape arithmetic) per layer; the contrib op does it in one. Used only in
    ONNX export of unpadded (batch-1) inputs; the PyTorch forward is the same maths for parity checks.
    """

    @staticmethod
    def forward(ctx: Any, q: Tensor, k: Tensor, v: Tensor, heads: int) -> Tensor:
        b, tq, d = q.shape
        dk = d // heads
        qh = q.reshape(b, tq, heads, dk).transpose(1, 2)
        kh = k.reshape(b, -1, heads, dk).transpose(1, 2)
        vh = v.reshape(b, -1, heads, dk).transpose(1, 2)
        att = torch.softmax(torch.matmul(qh, kh.transpose(-1, -2)) * (1.0 / math.sqrt(dk)), dim=-1)
        return torch.matmul(att, vh).transpose(1, 2).reshape(b, tq, d)

    @staticmethod
    def symbolic(g: Any, q: Any, k: Any, v: Any, heads: int) -> Any:
        return g.op("com.microsoft::MultiHeadAttention", q, k, v, num_heads_i=heads)


class Attention(nn.Module):
    """Multi-head attention written out (no fused fast path), so the ONNX export is plain MatMul/Softmax."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        assert d % heads == 0, "d_model must be divisible by heads"
        self.h = heads
        self.dk = d // heads
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.o = nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mem: Tensor, key_pad: Tensor | None) -> Tensor:
        """x [B, Tq, d] attends over mem [B, Tk, d]; key_pad [B, Tk] is True at padding."""
        if key_pad is None and torch.onnx.is_in_onnx_export():
            k, v = self.kv(mem).chunk(2, dim=-1)
            return self.o(_FusedAttention.apply(self.q(x), k, v, self.h))
        b, tq, d = x.shape
        q = self.q(x).reshape(b, tq, self.h, self.dk).transpose(1, 2)
        k, v = self.kv(mem).reshape(b, -1, 2, self.h, self.dk).permute(2, 0, 3, 1, 4).unbind(0)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.dk))
        if key_pad is not None:
            scores = scores.masked_fill(key_pad[:, None, None, :], float("-inf"))
        att = self.drop(torch.softmax(scores, dim=-1))
        out = torch.matmul(att, v).transpose(1, 2).reshape(b, tq, d)
        return self.o(out)


class Block(nn.Module):
    """Transformer layer: self-attention, optional cross-attention, feed-forward; pre- or post-norm."""

    def __init__(self, cfg: ModelConfig, cross: bool) -> None:
        super().__init__()
        d = cfg.d_model
        self.norm_first = cfg.norm_first
        self.n1 = nn.LayerNorm(d)
        self.self_att = Attention(d, cfg.heads, cfg.dropout)
        self.cross = cross
        if cross:
            self.n2 = nn.LayerNorm(d)
            self.cross_att = Attention(d, cfg.heads, cfg.dropout)
        self.n3 = nn.LayerNorm(d)
        self.ff = nn.Sequential(
            nn.Linear(d, cfg.ffn_dim), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.ffn_dim, d)
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self, x: Tensor, pad: Tensor | None, mem: Tensor | None = None, mem_pad: Tensor | None = None
    ) -> Tensor:
        if not self.norm_first:  # post-norm (Marian): residual first, then LayerNorm
            x = self.n1(x + self.drop(self.self_att(x, x, pad)))
            if self.cross:
                assert mem is not None
                x = self.n2(x + self.drop(self.cross_att(x, mem, mem_pad)))
            return self.n3(x + self.drop(self.ff(x)))
        h = self.n1(x)
        x = x + self.drop(self.self_att(h, h, pad))
        if self.cross:
            assert mem is not None
            x = x + self.drop(self.cross_att(self.n2(x), mem, mem_pad))
        return x + self.drop(self.ff(self.n3(x)))


class NATModel(nn.Module):
    """Encoder → upsample (each source state → ``upsample`` decoder inputs) → non-causal decoder → CTC classes."""

    pe: Tensor  # [max_positions, d] sinusoidal table (non-persistent buffer)

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.embed = nn.Embedding(cfg.vocab_size + 2, d, padding_idx=cfg.pad_id)
        nn.init.normal_(self.embed.weight, std=d**-0.5)
        with torch.no_grad():
            self.embed.weight[cfg.pad_id].zero_()
        self.scale = math.sqrt(d)
        self.register_buffer("pe", sinusoidal_table(cfg.max_positions, d, cfg.position_layout), persistent=False)
        self.encoder = nn.ModuleList(Block(cfg, cross=False) for _ in range(cfg.encoder_layers))
        # post-norm layers end in a LayerNorm already; pre-norm stacks need a final one
        self.enc_norm: nn.Module = nn.LayerNorm(d) if cfg.norm_first else nn.Identity()
        self.up = nn.Linear(d, d * cfg.upsample)
        self.decoder = nn.ModuleList(Block(cfg, cross=True) for _ in range(cfg.decoder_layers))
        self.dec_norm: nn.Module = nn.LayerNorm(d) if cfg.norm_first else nn.Identity()
        self.drop = nn.Dropout(cfg.dropout)

    # -- pieces -----------------------------------------------------------------------------------
    def encode(self, src: Tensor, src_pad: Tensor | None) -> Tensor:
        """src [B, S] ids → encoder states [B, S, d]."""
        s = src.shape[1]
        x = self.drop(self.embed(src) * self.scale + self.pe[:s])
        for layer in self.encoder:
            x = layer(x, src_pad)
        return self.enc_norm(x)

    def upsample(self, enc: Tensor) -> Tensor:
        """[B, S, d] → decoder inputs [B, S·upsample, d] (positions are added in ``decode``)."""
        b, _, d = enc.shape
        return self.up(enc).reshape(b, -1, d)

    def decode_states(self, dec_in: Tensor, dec_pad: Tensor | None, enc: Tensor, src_pad: Tensor | None) -> Tensor:
        """Decoder inputs [B, T, d] → final decoder states [B, T, d] (before the output layer)."""
        t = dec_in.shape[1]
        x = self.drop(dec_in + self.pe[:t])
        for layer in self.decoder:
            x = layer(x, dec_pad, enc, src_pad)
        return self.dec_norm(x)

    def decode(self, dec_in: Tensor, dec_pad: Tensor | None, enc: Tensor, src_pad: Tensor | None) -> Tensor:
        """Decoder inputs [B, T, d] → logits [B, T, V+1] (output layer tied to piece + blank embeddings)."""
        return F.linear(self.decode_states(dec_in, dec_pad, enc, src_pad), self.embed.weight[: self.cfg.num_classes])

    def states(self, src: Tensor, src_pad: Tensor | None = None, *, refinements: int = 0,
               vocab: Tensor | None = None, threshold: float = REFINE_THRESHOLD) -> Tensor:
        """src [B, S] → final decoder states [B, S·upsample, d] (``forward`` without the output layer).

        ``refinements`` > 0: that many extra decoder passes, each feeding the embedding of the previous
        pass's prediction at every position predicted with probability ≥ ``threshold`` (the inputs glancing
        training showed the decoder) and the upsampled encoder state elsewhere. ``vocab`` [K] restricts those
        predictions to a shortlist (ids into the output classes).
        """
        enc = self.encode(src, src_pad)
        first = self.upsample(enc)
        dec_pad = self.dec_pad_mask(src_pad)
        x = self.decode_states(first, dec_pad, enc, src_pad)
        table = self.embed.weight
        weight = table[: self.cfg.num_classes] if vocab is None else table.index_select(0, vocab)
        for _ in range(refinements):
            conf, best = torch.softmax(torch.matmul(x, weight.t()), dim=-1).max(dim=-1)
            pred = best if vocab is None else vocab.index_select(0, best.reshape(-1)).reshape(best.shape)
            sure = (conf >= threshold).unsqueeze(-1)
            x = self.decode_states(torch.where(sure, self.embed(pred) * self.scale, first), dec_pad, enc, src_pad)
        return x

    def dec_pad_mask(self, src_pad: Tensor | None) -> Tensor | None:
        return None if src_pad is None else src_pad.repeat_interleave(self.cfg.upsample, dim=1)

    def forward(self, src: Tensor, src_pad: Tensor | None = None) -> Tensor:
        """src [B, S] → logits [B, S·upsample, V+1]. ``src_pad`` [B, S] is True at padding (None: no padding)."""
        enc = self.encode(src, src_pad)
        return self.decode(self.upsample(enc), self.dec_pad_mask(src_pad), enc, src_pad)

    # -- training ---------------------------------------------------------------------------------
    def loss(self, src: Tensor, tgt: Tensor, tgt_lens: Tensor, glance_ratio: float = 0.0) -> Tensor:
        """Mean CTC loss (per target token, as ``ctc_loss(reduction="mean")``) with optional glancing.

        src [B, S] padded with ``pad_id``; tgt [B, L] padded with anything; tgt_lens [B] target lengths (tokens).
        With ``glance_ratio`` > 0: a no-grad first pass, the Viterbi CTC alignment of the reference to it, then
        ``ceil(ratio · hamming(first-pass argmax, alignment))`` random decoder inputs per sentence are replaced by
        the embeddings of their aligned tokens (blank embedding for blanks) before the second pass (GLAT).
        """
        cfg = self.cfg
        src_pad = src.eq(cfg.pad_id)
        dec_pad = self.dec_pad_mask(src_pad)
        assert dec_pad is not None
        in_lens = (~dec_pad).sum(1)
        enc = self.encode(src, src_pad)
        dec_in = self.upsample(enc)
        if glance_ratio > 0.0:
            with torch.no_grad():
                logits0 = self.decode(dec_in.detach(), dec_pad, enc.detach(), src_pad)
                logp0 = logits0.float().log_softmax(-1)
                aligned, ok = ctc_viterbi_align(logp0, tgt, in_lens, tgt_lens, cfg.blank_id)
                dec_in = glance(
                    dec_in,
                    aligned,
                    logp0.argmax(-1),
                    ~dec_pad & ok[:, None],
                    glance_ratio,
                    self.embed.weight * self.scale,
                )
        logits = self.decode(dec_in, dec_pad, enc, src_pad)
        logp = logits.float().log_softmax(-1)
        return F.ctc_loss(
            logp.transpose(0, 1), tgt, in_lens, tgt_lens, blank=cfg.blank_id, reduction="mean", zero_infinity=True
        )


def glance(dec_in: Tensor, aligned: Tensor, pred: Tensor, valid: Tensor, ratio: float, emb: Tensor) -> Tensor:
    """Replace ``ceil(ratio · #wrong)`` random valid positions per row of dec_in [B, T, d] by emb[aligned]."""
    wrong = (pred != aligned) & valid
    n = torch.ceil(wrong.sum(1).float() * ratio)  # [B]
    noise = torch.rand(aligned.shape, device=aligned.device).masked_fill(~valid, 2.0)
    rank = noise.argsort(1).argsort(1)  # rank of each position among the row's random scores
    chosen = rank < n[:, None]
    return torch.where(chosen[..., None], emb[aligned].to(dec_in.dtype), dec_in)


def ctc_collapse(ids: list[int], blank: int) -> list[int]:
    """Greedy CTC output: merge repeated ids, then drop blanks."""
    out: list[int] = []
    prev = -1
    for i in ids:
        if i != prev and i != blank:
            out.append(i)
        prev = i
    return out


def anneal_ratio(step: int, total_steps: int, start: float = 0.5, end: float = 0.3) -> float:
    """Glancing ratio annealed linearly from ``start`` to ``end`` over ``total_steps`` optimiser steps."""
    if total_steps <= 0:
        return end
    frac = min(max(step / total_steps, 0.0), 1.0)
    return start + (end - start) * frac


@torch.no_grad()
def greedy_decode(model: NATModel, src: Tensor) -> list[list[int]]:
    """Argmax per position then CTC collapse, for src [B, S] padded with ``pad_id``; returns piece ids."""
    pad = src.eq(model.cfg.pad_id)
    logits = model(src, pad if bool(pad.any()) else None)
    am = logits.argmax(-1)
    dec_pad = model.dec_pad_mask(pad)
    out = []
    for r in range(src.shape[0]):
        row = am[r] if dec_pad is None else am[r][~dec_pad[r]]
        out.append(ctc_collapse(row.tolist(), model.cfg.blank_id))
    return out
