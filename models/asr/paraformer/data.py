"""Training examples and batches: cached fbank → LFR → CMVN, SpecAugment, length-bucketed batches.

Each example keeps its fbank (float16, 10 ms rows); LFR stacking (7 frames every 6, 60 ms rows of 560 values)
and CMVN happen when a batch is built, so one cache serves any CMVN. Batches hold at most
``max_frames`` LFR frames (padding included) and are shuffled by a seeded generator per epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from models.asr.frontend import Cmvn, FrontendOptions, apply_lfr
from models.asr.paraformer.tokenizer import AsrTokenizer
from models.speech_corpus.corpus import Utterance


@dataclass(frozen=True)
class Example:
    """One utterance: fbank ``[frames, 80]`` float16, token ids (no end token) and the raw transcript."""

    fbank: np.ndarray
    ids: tuple[int, ...]
    text: str

    @property
    def lfr_frames(self) -> int:
        return -(-self.fbank.shape[0] // 6)


@dataclass(frozen=True)
class SpecAugment:
    """Masks on LFR features: ``freq_masks`` bands of ≤ ``freq_width`` mel bins (the same bins in all 7
    stacked frames) and ``time_masks`` spans of ≤ ``time_width`` LFR frames (60 ms each)."""

    freq_masks: int = 2
    freq_width: int = 10
    time_masks: int = 2
    time_width: int = 4

    def __call__(self, x: np.ndarray, rng: np.random.Generator, n_mels: int = 80) -> np.ndarray:
        x = x.copy()
        t = x.shape[0]
        stacked = x.reshape(t, -1, n_mels)
        for _ in range(self.freq_masks):
            w = int(rng.integers(0, self.freq_width + 1))
            f0 = int(rng.integers(0, max(1, n_mels - w)))
            stacked[:, :, f0 : f0 + w] = 0.0
        for _ in range(self.time_masks):
            w = min(int(rng.integers(0, self.time_width + 1)), max(0, t // 5))
            t0 = int(rng.integers(0, max(1, t - w)))
            stacked[t0 : t0 + w] = 0.0
        return stacked.reshape(t, -1)


def make_examples(utts: Sequence[Utterance], tokenizer: AsrTokenizer, *, max_ratio: float = 0.9) -> list[Example]:
    """Tokenise transcripts; drop utterances with more tokens than ``max_ratio`` × LFR frames (CIF cannot fire)."""
    out = []
    for u in utts:
        ids = tuple(tokenizer.encode(u.text))
        ex = Example(u.feats, ids, u.text)
        if ids and len(ids) + 1 <= max_ratio * ex.lfr_frames:
            out.append(ex)
    return out


def lfr_features(ex: Example, opts: FrontendOptions, cmvn: Cmvn | None) -> np.ndarray:
    feats = apply_lfr(ex.fbank.astype(np.float32), opts.lfr_m, opts.lfr_n)
    return cmvn.apply(feats) if cmvn is not None else feats


def compute_cmvn(examples: Sequence[Example], opts: FrontendOptions, *, limit: int = 2000) -> Cmvn:
    """Global mean / std of LFR features over (up to ``limit``) examples."""
    total = np.zeros(opts.feature_dim, dtype=np.float64)
    sq = np.zeros(opts.feature_dim, dtype=np.float64)
    n = 0
    for ex in examples[:limit]:
        f = lfr_features(ex, opts, None).astype(np.float64)
        total += f.sum(axis=0)
        sq += (f**2).sum(axis=0)
        n += f.shape[0]
    mean = total / max(1, n)
    std = np.sqrt(np.maximum(sq / max(1, n) - mean**2, 1e-8))
    return Cmvn.from_stats(mean.astype(np.float32), std.astype(np.float32))


@dataclass
class Batch:
    speech: torch.Tensor  # [B, T, 560] float32
    lengths: torch.Tensor  # [B] int64, LFR frames
    targets: torch.Tensor  # [B, L] int64, padded with -1
    target_lengths: torch.Tensor  # [B] int64
    texts: list[str]


def padded_targets(examples: Sequence[Example], width: int = 0) -> np.ndarray:
    """Token ids ``[N, max(width, longest)]`` int64, padded with -1."""
    lmax = max([width, *(len(ex.ids) for ex in examples)])
    targets = np.full((len(examples), lmax), -1, dtype=np.int64)
    for i, ex in enumerate(examples):
        targets[i, : len(ex.ids)] = ex.ids
    return targets


def collate(examples: Sequence[Example], opts: FrontendOptions, cmvn: Cmvn | None,
            augment: SpecAugment | None = None, rng: np.random.Generator | None = None) -> Batch:
    feats = [lfr_features(ex, opts, cmvn) for ex in examples]
    if augment is not None and rng is not None:
        feats = [augment(f, rng, opts.n_mels) for f in feats]
    t = max(f.shape[0] for f in feats)
    speech = np.zeros((len(feats), t, opts.feature_dim), dtype=np.float32)
    for i, f in enumerate(feats):
        speech[i, : f.shape[0]] = f
    targets = padded_targets(examples)
    return Batch(
        speech=torch.from_numpy(speech),
        lengths=torch.tensor([f.shape[0] for f in feats], dtype=torch.int64),
        targets=torch.from_numpy(targets),
        target_lengths=torch.tensor([len(ex.ids) for ex in examples], dtype=torch.int64),
        texts=[ex.text for ex in examples],
    )


def batch_indices(examples: Sequence[Example], *, max_frames: int, seed: int, epoch: int,
                  shuffle: bool = True) -> list[list[int]]:
    """Group examples of similar length so that ``len(batch) × longest ≤ max_frames``; shuffled per epoch."""
    rng = np.random.default_rng(seed * 1000 + epoch)
    lengths = np.array([ex.lfr_frames for ex in examples])
    order = np.argsort(lengths + (rng.random(len(lengths)) * 3 if shuffle else 0), kind="stable")
    batches: list[list[int]] = []
    cur: list[int] = []
    longest = 0
    for i in order:
        longest_new = max(longest, int(lengths[i]))
        if cur and longest_new * (len(cur) + 1) > max_frames:
            batches.append(cur)
            cur, longest_new = [], int(lengths[i])
        cur.append(int(i))
        longest = longest_new
    if cur:
        batches.append(cur)
    if shuffle:
        rng.shuffle(batches)
    return batches


def iterate_batches(examples: Sequence[Example], batches: list[list[int]], opts: FrontendOptions, cmvn: Cmvn,
                    *, augment: SpecAugment | None, seed: int, epoch: int, start: int = 0,
                    stream: int = 0) -> Iterator[Batch]:
    """Batches from ``start`` on (resuming mid-epoch skips the finished ones); ``stream`` (a data-parallel
    worker's rank) gives each worker its own augmentation draws."""
    for k in range(start, len(batches)):
        rng = np.random.default_rng([seed, epoch, k] if stream == 0 else [seed, epoch, k, stream])
        yield collate([examples[i] for i in batches[k]], opts, cmvn, augment, rng)
