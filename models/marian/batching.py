"""Token-budget batches of tokenised sentence pairs, sorted by length, shuffled per epoch with a seed."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PairBatch:
    """One padded batch: ``input_ids``/``attention_mask`` [B,S]; ``decoder_input_ids``/``labels`` [B,T].

    Label -100 marks padding (ignored by the loss).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    decoder_input_ids: torch.Tensor
    labels: torch.Tensor

    @property
    def n_target_tokens(self) -> int:
        return int((self.labels != -100).sum())


def make_batches(
    src_ids: list[list[int]], tgt_ids: list[list[int]], *, max_tokens: int, seed: int
) -> list[list[int]]:
    """Group example indices into batches of at most ``max_tokens`` (padded source + target tokens).

    Examples are sorted by length (ties broken by a seeded shuffle) so padding stays small; the batch
    order is then shuffled with ``seed``.
    """
    rng = random.Random(seed)
    order = list(range(len(src_ids)))
    rng.shuffle(order)
    order.sort(key=lambda i: (len(tgt_ids[i]), len(src_ids[i])))
    batches: list[list[int]] = []
    cur: list[int] = []
    max_s = max_t = 0
    for i in order:
        s, t = len(src_ids[i]), len(tgt_ids[i])
        ms, mt = max(max_s, s), max(max_t, t)
        if cur and (len(cur) + 1) * (ms + mt) > max_tokens:
            batches.append(cur)
            cur, ms, mt = [], s, t
        cur.append(i)
        max_s, max_t = ms, mt
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def collate(
    indices: list[int], src_ids: list[list[int]], tgt_ids: list[list[int]], *, pad_id: int, decoder_start_id: int
) -> PairBatch:
    """Pad one batch; ``decoder_input_ids`` are the labels shifted right behind ``decoder_start_id``."""
    b = len(indices)
    s_len = max(len(src_ids[i]) for i in indices)
    t_len = max(len(tgt_ids[i]) for i in indices)
    inp = torch.full((b, s_len), pad_id, dtype=torch.long)
    mask = torch.zeros((b, s_len), dtype=torch.long)
    dec = torch.full((b, t_len), pad_id, dtype=torch.long)
    lab = torch.full((b, t_len), -100, dtype=torch.long)
    for row, i in enumerate(indices):
        s, t = src_ids[i], tgt_ids[i]
        inp[row, : len(s)] = torch.tensor(s)
        mask[row, : len(s)] = 1
        lab[row, : len(t)] = torch.tensor(t)
        dec[row, 0] = decoder_start_id
        dec[row, 1 : len(t)] = torch.tensor(t[:-1])
    return PairBatch(inp, mask, dec, lab)
