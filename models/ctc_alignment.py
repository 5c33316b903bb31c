"""Best CTC alignment of a reference to frame log-probabilities (Viterbi), batched, in torch.

Used by the NAT trainer (glancing targets) and the Paraformer trainer (where each token's CTC spike is, to teach the
CIF predictor to fire there).
"""

from __future__ import annotations

import torch
from torch import Tensor


def ctc_viterbi_align(
    logp: Tensor, tgt: Tensor, in_lens: Tensor, tgt_lens: Tensor, blank: int
) -> tuple[Tensor, Tensor]:
    """Best CTC alignment (Viterbi) of each reference to its frame log-probs; batched, loop over time.

    logp [B, T, C] log-probabilities; tgt [B, L] token ids; in_lens [B] frames; tgt_lens [B] tokens.
    Returns (aligned [B, T] one label per frame, blank where the path is blank and also past ``in_lens``;
    ok [B] False where no alignment exists, i.e. too few frames; those rows are all blank).
    """
    b, t_max, _ = logp.shape
    dev = logp.device
    l_max = tgt.shape[1]
    k = 2 * l_max + 1
    ext = torch.full((b, k), blank, dtype=torch.long, device=dev)
    if l_max > 0:
        ext[:, 1::2] = tgt.long()
    k_idx = torch.arange(k, device=dev)
    k_valid = k_idx[None, :] < (2 * tgt_lens[:, None] + 1)
    ext = torch.where(k_valid, ext, torch.full_like(ext, blank))  # padding of tgt may hold any id
    # s-2 transition allowed into a non-blank that differs from the label two states back
    skip = torch.zeros(b, k, dtype=torch.bool, device=dev)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    neg = torch.tensor(float("-inf"), device=dev)
    emit = logp.gather(2, ext[:, None, :].expand(b, t_max, k))  # [B, T, K]
    score = torch.full((b, k), float("-inf"), device=dev)
    score[:, 0] = emit[:, 0, 0]
    if k > 1:
        score[:, 1] = emit[:, 0, 1]
    score = torch.where(k_valid, score, neg)
    back = torch.zeros(b, t_max, k, dtype=torch.long, device=dev)  # how many states back we came from
    for t in range(1, t_max):
        stay = score
        step1 = torch.cat([neg.expand(b, 1), score[:, :-1]], 1)
        step2 = torch.cat([neg.expand(b, 2), score[:, :-2]], 1) if k > 2 else torch.full_like(score, float("-inf"))
        step2 = torch.where(skip, step2, neg)
        cand = torch.stack([stay, step1, step2], 2)  # [B, K, 3]
        best, arg = cand.max(2)
        new = torch.where(k_valid, best + emit[:, t], neg)
        active = (t < in_lens)[:, None]
        score = torch.where(active, new, score)
        back[:, t] = torch.where(active, arg, torch.zeros_like(arg))
    last = 2 * tgt_lens  # final blank state
    fin_blank = score.gather(1, last[:, None]).squeeze(1)
    fin_label = score.gather(1, (last - 1).clamp(min=0)[:, None]).squeeze(1)
    fin_label = torch.where(tgt_lens > 0, fin_label, neg)
    state = torch.where(fin_label > fin_blank, last - 1, last)
    ok = torch.maximum(fin_blank, fin_label) > float("-inf")
    aligned = torch.full((b, t_max), blank, dtype=torch.long, device=dev)
    cur = state.clone()
    rows = torch.arange(b, device=dev)
    for t in range(t_max - 1, -1, -1):
        inside = t < in_lens
        aligned[:, t] = torch.where(inside, ext[rows, cur], aligned[:, t])
        step = back[rows, t, cur]
        cur = torch.where(inside, cur - step, cur)
    aligned = torch.where(ok[:, None], aligned, torch.full_like(aligned, blank))
    return aligned, ok


def token_starts(aligned: Tensor, blank: int) -> Tensor:
    """``[B, T]`` bool: frames where a token of a CTC alignment begins (a non-blank that differs from the frame
    before it; a repeated token is always separated by a blank, so it starts again)."""
    prev = torch.cat([torch.full_like(aligned[:, :1], blank), aligned[:, :-1]], dim=1)
    return (aligned != blank) & (aligned != prev)
