"""A small Paraformer in PyTorch: SAN-M encoder, CIF predictor, parallel decoder, glancing sampling, CTC.

Inputs are LFR + CMVN features ``[B, T, 560]`` (one row per 60 ms of 16 kHz audio); the encoder keeps that
frame rate. The predictor gives each frame a weight ``alpha`` (sigmoid); CIF fires one acoustic embedding
per unit of accumulated weight (threshold 1.0, tail 0.45 at inference). The decoder reads all embeddings at
once (no causal mask) with cross-attention to the encoder, so the whole sentence is decoded in one pass.

The encoder uses no absolute positions (the FSMN memory block of SAN-M gives order information), so a
window of frames is encoded the same way wherever it sits in the utterance: that is what lets the streaming
runtime encode chunks with limited left context.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.ctc_alignment import ctc_viterbi_align, token_starts


@dataclass
class ParaformerConfig:
    """Model shape and loss weights (FunASR names where they exist)."""

    vocab_size: int = 1000
    input_dim: int = 560
    d_model: int = 256
    heads: int = 4
    ffn_dim: int = 1024
    encoder_layers: int = 6
    decoder_layers: int = 3
    fsmn_kernel: int = 11
    dropout: float = 0.1
    predictor_bias: int = 1  # the predictor also counts the end-of-sentence slot
    threshold: float = 1.0
    tail_threshold: float = 0.45
    ctc_weight: float = 0.3
    predictor_weight: float = 1.0
    sampling_ratio: float = 0.75  # glancing: share of wrong tokens replaced by their target embedding
    chunk_train_prob: float = 0.0  # share of batches encoded with a streaming chunk mask (see chunk_mask)
    # CIF alignment loss (needs the CTC head): the predictor, on a stopped-gradient encoder, learns to fire each
    # token at its CTC spike (binary cross-entropy per frame); 0 = FunASR's quantity loss only
    align_weight: float = 0.0
    label_smoothing: float = 0.1
    blank_id: int = 0
    sos_id: int = 1
    eos_id: int = 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParaformerConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# model settings that shape training only (no weight depends on them): a resumed run may change them
TRAINING_ONLY_SETTINGS = ("dropout", "predictor_weight", "align_weight", "sampling_ratio", "chunk_train_prob",
                          "label_smoothing")


def lengths_to_mask(lengths: Tensor, max_len: int | Tensor) -> Tensor:
    """``[B, T]`` bool, True on valid frames."""
    ar = torch.arange(cast(int, max_len), device=lengths.device)  # a 0-d tensor keeps the ONNX length dynamic
    return ar[None, :] < lengths[:, None]


def chunk_mask(frames: int, chunk: int, lookahead: int, left: int) -> Tensor:
    """``[T, T]`` bool: frame ``i`` in chunk ``[s, s + chunk)`` may attend to frames ``[s - left, s + chunk +
    lookahead)``, the window the streaming runtime encodes that chunk with (all counts in 60 ms LFR frames)."""
    idx = torch.arange(frames)
    start = (idx // chunk) * chunk
    j = idx[None, :]
    return (j >= (start - left)[:, None]) & (j < (start + chunk + lookahead)[:, None])


class FeedForward(nn.Module):
    def __init__(self, d: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.w1, self.w2, self.drop = nn.Linear(d, ffn), nn.Linear(ffn, d), nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(self.drop(F.relu(self.w1(x))))


class Fsmn(nn.Module):
    """FSMN memory block: depthwise 1-D convolution over time (kernel ``k``, centred), padded frames zeroed."""

    def __init__(self, d: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(d, d, kernel, padding=kernel // 2, groups=d, bias=False)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        m = mask[:, :, None].to(x.dtype)
        x = x * m
        return self.conv(x.transpose(1, 2)).transpose(1, 2) * m


class SanmAttention(nn.Module):
    """SAN-M: multi-head self-attention plus an FSMN memory on the values."""

    def __init__(self, d: int, heads: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dk = heads, d // heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.fsmn = Fsmn(d, kernel)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor, att_mask: Tensor | None = None) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        memory = self.fsmn(v, mask) + v * mask[:, :, None].to(x.dtype)

        def heads(z: Tensor) -> Tensor:
            return z.view(b, t, self.heads, self.dk).transpose(1, 2)

        scores = heads(q) @ heads(k).transpose(-1, -2) / math.sqrt(self.dk)
        allowed = mask[:, None, None, :]
        if att_mask is not None:
            allowed = allowed & att_mask[None, None]
        scores = scores.masked_fill(~allowed, -1e4)
        att = self.drop(torch.softmax(scores, dim=-1)) @ heads(v)
        return self.out(att.transpose(1, 2).reshape(b, t, d)) + memory


class EncoderLayer(nn.Module):
    def __init__(self, c: ParaformerConfig) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.att = SanmAttention(c.d_model, c.heads, c.fsmn_kernel, c.dropout)
        self.ffn = FeedForward(c.d_model, c.ffn_dim, c.dropout)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: Tensor, mask: Tensor, att_mask: Tensor | None = None) -> Tensor:
        x = x + self.drop(self.att(self.norm1(x), mask, att_mask))
        return x + self.drop(self.ffn(self.norm2(x)))


class Encoder(nn.Module):
    """Input projection, SAN-M layers, final layer norm; keeps the LFR frame rate (60 ms per frame)."""

    def __init__(self, c: ParaformerConfig) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(c.input_dim, c.d_model), nn.LayerNorm(c.d_model), nn.Dropout(c.dropout))
        self.layers = nn.ModuleList(EncoderLayer(c) for _ in range(c.encoder_layers))
        self.norm = nn.LayerNorm(c.d_model)

    def forward(self, x: Tensor, mask: Tensor, att_mask: Tensor | None = None) -> Tensor:
        x = self.proj(x)
        for layer in self.layers:
            x = layer(x, mask, att_mask)
        return self.norm(x) * mask[:, :, None].to(x.dtype)


class CifPredictor(nn.Module):
    """Per-frame CIF weights: conv (kernel 3) + residual, ReLU, linear, sigmoid; padded frames get 0."""

    def __init__(self, d: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(d, d, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(d, 1)

    def forward(self, enc: Tensor, mask: Tensor) -> Tensor:
        h = self.conv(enc.transpose(1, 2)).transpose(1, 2) + enc
        # float32 even under bf16 autocast: CIF integrates these weights to thresholds of exactly 1.0
        alphas = torch.sigmoid(self.out(F.relu(self.drop(h))).float()).squeeze(-1)
        return alphas * mask.to(alphas.dtype)


def cif_dense(alphas: Tensor, hidden: Tensor, num_tokens: Tensor, max_tokens: int | Tensor) -> Tensor:
    """CIF as one matrix product: token ``k`` takes from frame ``t`` the overlap of ``[c_{t-1}, c_t)`` with
    ``[k, k+1)``, where ``c`` is the running sum of alphas (threshold 1). Same result as the frame loop of
    :mod:`models.asr.cif`. Returns ``[B, K, D]``; tokens at or after ``num_tokens`` are zero.
    """
    c = torch.cumsum(alphas, dim=1)
    prev = c - alphas
    k = torch.arange(cast(int, max_tokens), device=alphas.device).to(alphas.dtype)
    lo = torch.maximum(prev[:, None, :], k[None, :, None])
    hi = torch.minimum(c[:, None, :], k[None, :, None] + 1.0)
    weights = torch.clamp(hi - lo, min=0.0)
    valid = (k[None, :] < num_tokens[:, None].to(alphas.dtype)).to(alphas.dtype)
    return (weights @ hidden) * valid[:, :, None]


def add_tail(alphas: Tensor, hidden: Tensor, lengths: Tensor, tail: float) -> tuple[Tensor, Tensor]:
    """Append one frame and give the first padded position of each row the weight ``tail`` and a zero vector."""
    b = alphas.shape[0]
    alphas = torch.cat([alphas, alphas.new_zeros(b, 1)], dim=1)
    hidden = torch.cat([hidden, hidden.new_zeros(b, 1, hidden.shape[2])], dim=1)
    pos = torch.arange(alphas.shape[1], device=alphas.device)[None, :]
    valid = pos < lengths[:, None]
    alphas = alphas * valid.to(alphas.dtype) + tail * (pos == lengths[:, None]).to(alphas.dtype)
    hidden = hidden * valid[:, :, None].to(hidden.dtype)
    return alphas, hidden


class CrossAttention(nn.Module):
    """Multi-head attention from decoder tokens to encoder frames (padded frames masked out)."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dk = heads, d // heads
        self.q, self.kv, self.out = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, memory: Tensor, mem_mask: Tensor) -> Tensor:
        b, n, d = x.shape
        t = memory.shape[1]
        q = self.q(x).view(b, n, self.heads, self.dk).transpose(1, 2)
        k, v = self.kv(memory).split(d, dim=-1)
        k = k.view(b, t, self.heads, self.dk).transpose(1, 2)
        v = v.view(b, t, self.heads, self.dk).transpose(1, 2)
        scores = (q @ k.transpose(-1, -2) / math.sqrt(self.dk)).masked_fill(~mem_mask[:, None, None, :], -1e4)
        att = self.drop(torch.softmax(scores, dim=-1)) @ v
        return self.out(att.transpose(1, 2).reshape(b, n, d))


class Decoder(nn.Module):
    """Parallel decoder: FSMN over tokens, cross-attention to the encoder, feed-forward; vocab logits."""

    def __init__(self, c: ParaformerConfig) -> None:
        super().__init__()
        d = c.d_model
        self.embed = nn.Embedding(c.vocab_size, d)  # target embeddings for glancing sampling
        self.fsmn = nn.ModuleList(Fsmn(d, c.fsmn_kernel) for _ in range(c.decoder_layers))
        self.cross = nn.ModuleList(CrossAttention(d, c.heads, c.dropout) for _ in range(c.decoder_layers))
        self.ffn = nn.ModuleList(FeedForward(d, c.ffn_dim, c.dropout) for _ in range(c.decoder_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(3 * c.decoder_layers))
        self.drop = nn.Dropout(c.dropout)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, c.vocab_size)

    def forward(self, embeds: Tensor, tok_mask: Tensor, memory: Tensor, mem_mask: Tensor) -> Tensor:
        x = embeds
        for i, (fsmn, cross, ffn) in enumerate(zip(self.fsmn, self.cross, self.ffn, strict=True)):
            n1, n2, n3 = self.norms[3 * i], self.norms[3 * i + 1], self.norms[3 * i + 2]
            x = x + self.drop(fsmn(n1(x), tok_mask))
            q = n2(x)
            x = x + self.drop(cross(q, memory, mem_mask))
            x = x + self.drop(ffn(n3(x)))
        return self.out(self.norm(x))


@dataclass
class LossOutput:
    """Training losses and counts for logging: ``att`` cross-entropy per token, ``quantity`` mean |Σα − N| per
    utterance, ``ctc`` per target token, ``acc`` token accuracy of the decoder pass without glancing, ``align``
    the alignment loss: cross-entropy per frame of alpha against the CTC spikes (0 when it is off)."""

    loss: Tensor
    att: float
    quantity: float
    ctc: float
    acc: float
    tokens: int
    ctc_loss: Tensor | None = None  # the CTC term alone (per target token), for a CTC warm-up of the encoder
    align: float = 0.0


class LossTotals:
    """Running means of :class:`LossOutput` over an epoch (``loss, att, quantity, ctc, acc, align``)."""

    KEYS = ("loss", "att", "quantity", "ctc", "acc", "align")

    def __init__(self) -> None:
        self.sums = dict.fromkeys(self.KEYS, 0.0)
        self.n = 0

    def add(self, out: LossOutput) -> None:
        self.sums["loss"] += float(out.loss.detach())
        for k in self.KEYS[1:]:
            self.sums[k] += float(getattr(out, k))
        self.n += 1

    def mean(self, key: str) -> float:
        return self.sums[key] / max(1, self.n)

    def record(self) -> dict[str, float]:
        """Every mean, rounded to 4 decimals (an epoch's log line)."""
        return {k: round(self.mean(k), 4) for k in self.KEYS}


class Paraformer(nn.Module):
    """Encoder + CIF predictor + parallel decoder (+ CTC head when ``ctc_weight`` > 0)."""

    def __init__(self, config: ParaformerConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.predictor = CifPredictor(config.d_model, config.dropout)
        self.decoder = Decoder(config)
        self.ctc = nn.Linear(config.d_model, config.vocab_size) if config.ctc_weight > 0 else None

    def encode(self, speech: Tensor, lengths: Tensor, att_mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Encoder output ``[B, T, D]``, frame mask ``[B, T]`` and alphas ``[B, T]`` (no tail)."""
        mask = lengths_to_mask(lengths, speech.shape[1])
        enc = self.encoder(speech, mask, att_mask)
        return enc, mask, self.predictor(enc, mask)

    def infer(self, speech: Tensor, lengths: Tensor, *, with_ctc: bool = False) -> tuple[Tensor, ...]:
        """Offline decoding graph: log-probabilities ``[B, N, V]`` and token counts int32 ``[B]`` (and, with
        ``with_ctc``, the CTC head's log-probs ``[B, T, V]``)."""
        enc, mask, alphas = self.encode(speech, lengths)
        a, h = add_tail(alphas, enc, lengths, self.config.tail_threshold)
        token_num = torch.floor(a.sum(dim=1) / self.config.threshold + 1e-4)
        # at least one (masked) slot: with no token fired (silence, a very short clip) the decoder still gets a
        # well-formed input, and token_num = 0 tells the runtime there is nothing to read
        slots = torch.clamp(token_num.max(), min=1.0)
        embeds = cif_dense(a / self.config.threshold, h, token_num, slots)
        tok_mask = lengths_to_mask(token_num.to(torch.int64), embeds.shape[1])
        logits = self.decoder(embeds, tok_mask, enc, mask)
        out = (torch.log_softmax(logits, dim=-1), token_num.to(torch.int32))
        if with_ctc:
            return (*out, self.ctc_log_probs(enc))
        return out

    def greedy_ids(self, speech: Tensor, lengths: Tensor) -> list[list[int]]:
        """Offline argmax token ids per utterance, the end-of-sentence slot (``predictor_bias``) dropped."""
        logp, num = self.infer(speech, lengths)
        ids = logp.argmax(-1).cpu()
        return [ids[j, : max(0, int(num[j]) - self.config.predictor_bias)].tolist() for j in range(ids.shape[0])]

    def forward(self, speech: Tensor, lengths: Tensor, targets: Tensor, target_lengths: Tensor, *,
                encoder_only: bool = False) -> LossOutput:
        """Training losses. ``targets`` ``[B, L]`` are token ids padded with -1, without the end token.

        ``encoder_only``: the encoder warm-up step — CTC + quantity loss only (``loss``), no decoder pass at all
        (a third of the compute of a joint step); ``att`` and ``acc`` are then 0.
        """
        c = self.config
        att_mask = None
        if c.chunk_train_prob > 0 and float(torch.rand(())) < c.chunk_train_prob:
            # a random streaming geometry: chunks of 300–900 ms, 0–600 ms look-ahead, 0.6–3.6 s left context
            chunk, ahead, left = (int(torch.randint(lo, hi + 1, ())) for lo, hi in ((5, 15), (0, 10), (10, 60)))
            att_mask = chunk_mask(speech.shape[1], chunk, ahead, left).to(speech.device)
        enc, mask, alphas = self.encode(speech, lengths, att_mask)
        b = targets.shape[0]
        # decoder targets: tokens + </s> (predictor_bias = 1)
        ys = torch.cat([targets, targets.new_full((b, 1), -1)], dim=1)
        ys[torch.arange(b), target_lengths] = c.eos_id
        ys_len = target_lengths + c.predictor_bias
        ys = ys[:, : int(ys_len.max())] if c.predictor_bias else targets
        tok_mask = lengths_to_mask(ys_len, ys.shape[1])
        # quantity loss, then scale alphas so they integrate to exactly the target length
        total = alphas.sum(dim=1)
        quantity = (total - ys_len.to(total.dtype)).abs().mean()
        if encoder_only:
            if self.ctc is None:
                raise ValueError("encoder_only needs the CTC head (ctc_weight > 0)")
            # the predictor learns to count on a stopped-gradient encoder: the quantity loss's gradient kept CTC on
            # its blank plateau (greedy CTC WER 92 % after 960 steps with it, 50 % without)
            quantity = (self.predictor(enc.detach(), mask).sum(dim=1) - ys_len.to(total.dtype)).abs().mean()
            ctc = self._ctc(enc, lengths, targets, target_lengths)
            return LossOutput(loss=ctc + c.predictor_weight * quantity, att=0.0, quantity=float(quantity.detach()),
                              ctc=float(ctc.detach()), acc=0.0, tokens=int(tok_mask.sum()), ctc_loss=ctc)
        scaled = alphas * (ys_len.to(alphas.dtype) / total.clamp(min=1e-4))[:, None]
        acoustic = cif_dense(scaled, enc, ys_len, ys.shape[1])
        # glancing sampling: first pass without gradient, then replace some wrong positions by target embeddings
        with torch.no_grad():
            first = self.decoder(acoustic, tok_mask, enc, mask).argmax(-1)
            wrong = ((first != ys) & tok_mask).sum(dim=1)
            n_glance = (wrong.to(torch.float32) * c.sampling_ratio).floor().to(torch.int64)
            scores = torch.rand(ys.shape, device=ys.device).masked_fill(~tok_mask, -1.0)
            rank = scores.argsort(dim=1, descending=True).argsort(dim=1)
            glance = (rank < n_glance[:, None]) & tok_mask
        if bool(glance.any()):
            tgt_emb = self.decoder.embed(ys.clamp(min=0))
            acoustic = torch.where(glance[:, :, None], tgt_emb, acoustic)
        logits = self.decoder(acoustic, tok_mask, enc, mask)
        att = F.cross_entropy(
            logits[tok_mask], ys[tok_mask], label_smoothing=c.label_smoothing, reduction="mean"
        )
        loss = att + c.predictor_weight * quantity
        ctc_val = align_val = 0.0
        ctc_loss: Tensor | None = None
        if self.ctc is not None:
            ctc_lp = self.ctc_log_probs(enc)
            ctc = self._ctc_from(ctc_lp, lengths, targets, target_lengths)
            loss = (1 - c.ctc_weight) * att + c.ctc_weight * ctc + c.predictor_weight * quantity
            ctc_val = float(ctc.detach())
            ctc_loss = ctc
            if c.align_weight > 0:
                align = self.alignment_loss(enc, mask, ctc_lp.detach(), lengths, targets, target_lengths)
                loss = loss + c.align_weight * align
                align_val = float(align.detach())
        # accuracy of the first (unglanced) pass: what inference would get with the right token count
        acc = float(((first == ys) & tok_mask).sum()) / max(1, int(tok_mask.sum()))
        return LossOutput(loss=loss, att=float(att.detach()), quantity=float(quantity.detach()), ctc=ctc_val,
                          acc=acc, tokens=int(tok_mask.sum()), ctc_loss=ctc_loss, align=align_val)

    def alignment_loss(self, enc: Tensor, mask: Tensor, ctc_lp: Tensor, lengths: Tensor, targets: Tensor,
                       target_lengths: Tensor) -> Tensor:
        """Teach the CIF predictor where tokens are: the best CTC path of the reference gives the frame where each
        token starts (its spike); alpha should be 1 there, 1 on the last frame (the end-of-sentence slot,
        ``predictor_bias``) and 0 elsewhere. Binary cross-entropy per frame, over utterances that have a CTC path.
        A token then takes its embedding from its own spike frame, so neighbouring tokens no longer share frames
        (which made the decoder repeat words). The encoder is not moved by this loss (stopped gradient)."""
        with torch.no_grad():
            aligned, ok = ctc_viterbi_align(ctc_lp, targets.clamp(min=0), lengths, target_lengths,
                                            self.config.blank_id)
            target = token_starts(aligned, self.config.blank_id).to(torch.float32)
            if self.config.predictor_bias:
                last = torch.arange(target.shape[1], device=target.device)[None, :] == (lengths - 1)[:, None]
                target = torch.where(last, torch.ones_like(target), target)
            valid = (mask & ok[:, None]).to(torch.float32)
        alphas = self.predictor(enc.detach(), mask).clamp(1e-6, 1 - 1e-6)
        # written out: F.binary_cross_entropy is refused under CUDA autocast (alphas are float32 here anyway)
        bce = -(target * torch.log(alphas) + (1 - target) * torch.log1p(-alphas))
        return (bce * valid).sum() / valid.sum().clamp(min=1)

    def ctc_log_probs(self, enc: Tensor) -> Tensor:
        """CTC log-probabilities ``[B, T, V]``, float32 even under bf16 autocast."""
        assert self.ctc is not None
        return torch.log_softmax(self.ctc(enc).float(), dim=-1)

    def _ctc(self, enc: Tensor, lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
        """CTC loss per target token."""
        return self._ctc_from(self.ctc_log_probs(enc), lengths, targets, target_lengths)

    def _ctc_from(self, ctc_lp: Tensor, lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
        lp = ctc_lp.transpose(0, 1)
        flat = targets[targets >= 0]
        ctc = F.ctc_loss(lp, flat, lengths, target_lengths, blank=self.config.blank_id, reduction="sum",
                         zero_infinity=True)
        return ctc / max(1, int(target_lengths.sum()))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def load_weights(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Model weights (float32) and config dict from a ``last.pt``, an ``epochNN.pt`` or a float16 weights file of
    :mod:`tools.train_device`."""
    ck = torch.load(path, map_location="cpu", weights_only=False)
    return {k: v.float() for k, v in ck["model"].items()}, dict(ck["config"])
