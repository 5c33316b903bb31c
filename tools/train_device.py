"""Train the Paraformer on an accelerator for a fixed wall-clock budget (``python -m tools.train_device``).

The CPU trainer (:mod:`models.asr.paraformer.train`) streams small batches out of numpy; on a GPU that would leave the
chip idle. Here every utterance's LFR + CMVN features are computed once and kept on the device (float16, one flat
tensor with offsets), a batch is one gather, batches are large, and the learning rate follows the clock: linear
warm-up, then a cosine to ``min_lr_ratio`` × peak exactly when ``minutes`` run out — so a lease of a few minutes
ends on an annealed model instead of a half-trained one.

It starts from a checkpoint of the CPU run (``--init``: ``last.pt``, ``epochNN.pt`` or a weights-only file) and the
run's ``tokens.model`` and ``cmvn.npz`` (in ``--work-dir``), renders its own training corpora there (a new seed gives
new voices, speeds and noise for the same sentences; training starts on the first rendering while the others are
made in a background process on the remaining cores), and writes the weights (float16, small enough to fetch back)
after every epoch. A CPU run goes on from them with ``simulsub train paraformer --init-weights``;
:func:`models.asr.paraformer.train.finalize` exports them (``weights=``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.asr.frontend import Cmvn, FrontendOptions
from models.asr.paraformer.data import (
    Example,
    SpecAugment,
    batch_indices,
    lfr_features,
    make_examples,
    padded_targets,
)
from models.asr.paraformer.model import TRAINING_ONLY_SETTINGS, Paraformer, ParaformerConfig, load_weights
from models.asr.paraformer.tokenizer import AsrTokenizer, normalize_transcript
from models.speech_corpus.corpus import CorpusOptions, build_corpus, load_corpus
from models.speech_corpus.voices import VoicePlan
from models.text.data import multi30k_dir

logger = logging.getLogger(__name__)


@dataclass
class DeviceTrainOptions:
    """A time-budgeted run. ``max_frames`` counts LFR frames (60 ms) per batch, padding included."""

    work_dir: Path
    init: Path
    out_dir: Path
    data_dir: Path = field(default_factory=multi30k_dir)
    device: str = "cuda"
    minutes: float = 5.0
    # a hard end for the whole run (rendering and loading included), e.g. a lease's command limit; 0 = none
    total_minutes: float = 0.0
    seed: int = 2
    limit: int = 0  # first N training sentences only (smoke tests)
    copies: int = 2
    val_limit: int = 300
    val_seed: int = 1001  # the CPU run's validation corpus (seed 1 + 1000)
    festival_share: float = 0.15  # espeak-ng only where festival is not installed
    max_frames: int = 12000
    lr: float = 1.5e-3
    warmup_steps: int = 150
    min_lr_ratio: float = 0.05
    jobs: int = 16
    average: int = 3  # paraformer_weights_avg.pt: the mean of the weights after the last N epochs
    spec_augment: bool = False  # the model fits its renderings closely once trained a while: masks then help
    overrides: dict[str, Any] = field(default_factory=dict)  # training-only model settings (dropout, …)


class DeviceFeatures:
    """Every example's features in one flat float16 tensor on the device; ``batch`` gathers a padded batch."""

    def __init__(self, examples: list[Example], cmvn: Cmvn, device: torch.device) -> None:
        self.device, self.cmvn = device, cmvn
        self.count = 0
        self.offsets = torch.zeros(0, dtype=torch.int64, device=device)
        self.lengths = torch.zeros(0, dtype=torch.int64, device=device)
        self.store = torch.zeros(0, FrontendOptions().feature_dim, dtype=torch.float16, device=device)
        self.targets = torch.zeros(0, 0, dtype=torch.int64, device=device)
        self.target_lengths = torch.zeros(0, dtype=torch.int64, device=device)
        self.extend(examples)

    def extend(self, examples: list[Example]) -> None:
        """Append ``examples`` (their indices continue after the ones held)."""
        if not examples:
            return
        fopts = FrontendOptions()
        feats = [lfr_features(ex, fopts, self.cmvn) for ex in examples]
        lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.int64, device=self.device)
        starts = torch.cumsum(lengths, 0) - lengths + self.store.shape[0]
        self.offsets = torch.cat([self.offsets, starts])
        self.lengths = torch.cat([self.lengths, lengths])
        self.store = torch.cat([self.store, torch.from_numpy(np.concatenate(feats).astype(np.float16)).to(self.device)])
        targets = padded_targets(examples, width=self.targets.shape[1])
        held = torch.nn.functional.pad(self.targets, (0, targets.shape[1] - self.targets.shape[1]), value=-1)
        self.targets = torch.cat([held, torch.from_numpy(targets).to(self.device)])
        self.target_lengths = torch.cat([self.target_lengths, torch.tensor([len(ex.ids) for ex in examples],
                                                                          dtype=torch.int64, device=self.device)])
        self.count += len(examples)

    def batch(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """speech ``[B, T, 560]`` float32, lengths, targets ``[B, L]`` (-1 padded), target lengths."""
        i = torch.tensor(idx, dtype=torch.int64, device=self.device)
        lengths = self.lengths[i]
        t = int(lengths.max())
        pos = torch.arange(t, device=self.device)
        valid = pos[None, :] < lengths[:, None]
        rows = torch.where(valid, self.offsets[i][:, None] + pos[None, :], torch.zeros_like(pos)[None, :])
        speech = self.store[rows].float() * valid[:, :, None]
        tl = self.target_lengths[i]
        return speech, lengths, self.targets[i][:, : int(tl.max())], tl


def spec_augment_on_device(speech: torch.Tensor, lengths: torch.Tensor, augment: SpecAugment,
                           generator: torch.Generator | None = None, n_mels: int = 80) -> torch.Tensor:
    """SpecAugment on a padded LFR batch ``[B, T, 7·80]``, drawn per utterance as :class:`SpecAugment` does on the
    CPU: ``freq_masks`` bands of ≤ ``freq_width`` mel bins (the same bins in all stacked frames) and
    ``time_masks`` spans of ≤ ``time_width`` LFR frames (at most a fifth of the utterance)."""
    b, t, d = speech.shape
    dev = speech.device

    def draw(high: torch.Tensor | int, shape: tuple[int, ...]) -> torch.Tensor:
        u = torch.rand(shape, device=dev, generator=generator)
        return (u * (torch.as_tensor(high, device=dev).float() + 1)).floor().long()

    keep = torch.ones(b, t, d // n_mels, n_mels, device=dev, dtype=torch.bool)
    mel = torch.arange(n_mels, device=dev)
    for _ in range(augment.freq_masks):
        w = draw(augment.freq_width, (b,))
        f0 = (torch.rand(b, device=dev, generator=generator) * (n_mels - w).clamp(min=1)).floor().long()
        band = (mel[None, :] >= f0[:, None]) & (mel[None, :] < (f0 + w)[:, None])
        keep &= ~band[:, None, None, :]
    frames = torch.arange(t, device=dev)
    for _ in range(augment.time_masks):
        w = torch.minimum(draw(augment.time_width, (b,)), lengths // 5)
        t0 = (torch.rand(b, device=dev, generator=generator) * (lengths - w).clamp(min=1)).floor().long()
        span = (frames[None, :] >= t0[:, None]) & (frames[None, :] < (t0 + w)[:, None])
        keep &= ~span[:, :, None, None]
    return speech * keep.reshape(b, t, d)


def word_errors(hyp: str, ref: str) -> int:
    """Word-level edit distance (the progress report's WER; final scores come from ``simulsub transcribe``)."""
    h, r = hyp.split(), ref.split()
    prev = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        cur = [i] + [0] * len(h)
        for j, hw in enumerate(h, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rw != hw))
        prev = cur
    return prev[-1]


def device_wer(model: Paraformer, feats: DeviceFeatures, examples: list[Example], tok: AsrTokenizer) -> float:
    """Greedy offline WER (%) of ``model`` on ``examples`` (already in ``feats``)."""
    model.eval()
    errors = words = 0
    with torch.no_grad():
        for idx in batch_indices(examples, max_frames=20000, seed=0, epoch=0, shuffle=False):
            speech, lengths, _, _ = feats.batch(idx)
            for i, ids in zip(idx, model.greedy_ids(speech, lengths), strict=True):
                ref = normalize_transcript(examples[i].text)
                errors += word_errors(tok.decode(ids), ref)
                words += len(ref.split())
    model.train()
    return 100.0 * errors / max(1, words)


def train_corpus_dir(opts: DeviceTrainOptions, seed: int) -> Path:
    """Where the rendering with ``seed`` goes (the CPU trainer's naming, one copy)."""
    limit = f"-l{opts.limit}" if opts.limit else ""
    return opts.work_dir / "corpus" / f"train-s{seed}-c1{limit}-f{opts.festival_share:g}"


def render_corpus(opts: DeviceTrainOptions, seed: int, jobs: int) -> Path:
    """One rendering of every training sentence (``seed`` draws voices, speeds, noise)."""
    out = train_corpus_dir(opts, seed)
    plan = VoicePlan(split="train", festival_share=opts.festival_share)
    build_corpus(CorpusOptions(opts.data_dir / "train.en", out, seed=seed, copies=1, limit=opts.limit, plan=plan,
                               jobs=max(1, jobs)), progress=False)
    return out


def render_corpora(opts: DeviceTrainOptions, seeds: list[int], jobs: int) -> None:
    """The background process: render one corpus per seed, in order."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for seed in seeds:
        render_corpus(opts, seed, jobs)


def _half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """float16 copies on the CPU (what is fetched back: 13 MB for the 6.6 M-parameter model)."""
    return {k: v.detach().to("cpu", torch.float16) for k, v in state.items()}


def lr_at(step: int, frac: float, opts: DeviceTrainOptions) -> float:
    """Warm-up over ``warmup_steps``, then a cosine over the time budget (``frac`` of it spent) down to
    ``min_lr_ratio`` × ``lr``."""
    warm = min(1.0, (step + 1) / max(1, opts.warmup_steps))
    cos = opts.min_lr_ratio + (1 - opts.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
    return opts.lr * warm * cos


def train_on_device(opts: DeviceTrainOptions) -> Path:
    """Render, load, train until ``minutes`` are spent; returns the weights file in ``out_dir``."""
    started = time.monotonic()
    device = torch.device(opts.device)
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    train_dirs = [train_corpus_dir(opts, opts.seed + k) for k in range(max(1, opts.copies))]
    val_dir = opts.work_dir / "corpus" / f"val-s{opts.val_seed}-l{opts.val_limit}"
    render_corpus(opts, opts.seed, opts.jobs)
    build_corpus(CorpusOptions(opts.data_dir / "val.en", val_dir, seed=opts.val_seed, limit=opts.val_limit,
                               plan=VoicePlan.clean("train"), jobs=opts.jobs), progress=False)
    # the other renderings are made while the first one trains (spawned before CUDA is touched)
    background = None
    if len(train_dirs) > 1:
        background = mp.get_context("spawn").Process(
            target=render_corpora, args=(opts, [opts.seed + k for k in range(1, len(train_dirs))], opts.jobs - 1))
        background.start()
    logger.info("first corpus ready after %.0f s", time.monotonic() - started)
    tok = AsrTokenizer(opts.work_dir / "tokens.model")
    d = np.load(opts.work_dir / "cmvn.npz")
    cmvn = Cmvn(d["shift"], d["scale"])
    train_ex = make_examples(load_corpus(train_dirs[0]), tok)
    val_ex = make_examples(load_corpus(val_dir), tok, max_ratio=10.0)
    feats, val_feats = DeviceFeatures(train_ex, cmvn, device), DeviceFeatures(val_ex, cmvn, device)
    logger.info("%d training / %d validation utterances on %s after %.0f s", len(train_ex), len(val_ex), device,
                time.monotonic() - started)
    weights, config_dict = load_weights(opts.init)
    for k in opts.overrides:
        if k not in TRAINING_ONLY_SETTINGS:
            raise ValueError(f"{k} shapes weights: only {', '.join(TRAINING_ONLY_SETTINGS)} may be overridden")
    config = ParaformerConfig.from_dict({**config_dict, **opts.overrides})
    torch.manual_seed(opts.seed)
    model = Paraformer(config)
    model.load_state_dict(weights)
    model.to(device).train()
    optim = torch.optim.AdamW(model.parameters(), lr=opts.lr, betas=(0.9, 0.98), weight_decay=0.01)
    out = opts.out_dir / "paraformer_weights.pt"
    averaged = opts.out_dir / "paraformer_weights_avg.pt"
    recent: list[dict[str, torch.Tensor]] = []  # the weights after each of the last `average` epochs
    log: list[dict[str, Any]] = []
    wer0 = device_wer(model, val_feats, val_ex, tok)
    logger.info("start: val WER %.2f", wer0)
    log.append({"epoch": 0, "val_wer": round(wer0, 2)})
    t0 = time.monotonic()
    budget = 60.0 * opts.minutes
    if opts.total_minutes:  # keep ~25 s for the last validation and save
        budget = min(budget, 60.0 * opts.total_minutes - (t0 - started) - 25.0)
    logger.info("training for %.0f s", budget)
    step, epoch, done = 0, 0, False
    bf16 = device.type == "cuda"
    augment = SpecAugment() if opts.spec_augment else None
    while not done:
        if background is not None and not background.is_alive():
            if background.exitcode != 0:
                logger.warning("background rendering failed (exit %s): training on the first corpus only",
                               background.exitcode)
            else:
                for extra in train_dirs[1:]:
                    more = make_examples(load_corpus(extra), tok)
                    train_ex.extend(more)
                    feats.extend(more)
                logger.info("added the background renderings: %d training utterances", len(train_ex))
            background = None
        epoch += 1
        e0 = time.monotonic()
        sums = {"loss": 0.0, "acc": 0.0, "n": 0}
        for idx in batch_indices(train_ex, max_frames=opts.max_frames, seed=opts.seed, epoch=epoch):
            frac = (time.monotonic() - t0) / budget
            if frac >= 1.0:
                done = True
                break
            for g in optim.param_groups:
                g["lr"] = lr_at(step, frac, opts)
            speech, lengths, targets, target_lengths = feats.batch(idx)
            if augment is not None:
                speech = spec_augment_on_device(speech, lengths, augment)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                res = model(speech, lengths, targets, target_lengths)
            optim.zero_grad(set_to_none=True)
            res.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optim.step()
            step += 1
            sums["loss"] += float(res.loss.detach())
            sums["acc"] += res.acc
            sums["n"] += 1
        if not sums["n"]:  # the budget ran out as this epoch began: nothing new to score or save
            break
        n = int(sums["n"])
        wer = device_wer(model, val_feats, val_ex, tok)
        rec = {"epoch": epoch, "step": step, "val_wer": round(wer, 2), "loss": round(sums["loss"] / n, 4),
               "acc": round(sums["acc"] / n, 4), "lr": lr_at(step, (time.monotonic() - t0) / budget, opts),
               "seconds": round(time.monotonic() - e0, 1), "complete": not done}
        log.append(rec)
        logger.info("epoch %d: %s", epoch, rec)
        recent.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        del recent[: -max(1, opts.average)]
        meta = {"config": model.config.to_dict(), "log": log, "options": {k: str(v) for k, v in asdict(opts).items()}}
        torch.save({"model": _half(model.state_dict()), **meta}, out)
        if len(recent) > 1:  # the mean of the last epochs' weights, beside the last ones (pick by held-out WER)
            mean = {k: torch.stack([r[k].float() for r in recent]).mean(0) for k in recent[0]}
            torch.save({"model": _half(mean), "averaged": len(recent), **meta}, averaged)
        (opts.out_dir / "device_log.json").write_text(json.dumps(log, indent=1), encoding="utf-8")
    if background is not None:  # the budget ran out before the other renderings were done
        background.terminate()
        background.join()
    logger.info("done after %.0f s in all", time.monotonic() - started)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--work-dir", type=Path, required=True, help="holds tokens.model and cmvn.npz; corpora go here")
    p.add_argument("--init", type=Path, required=True, help="checkpoint to start from (last.pt, epochNN.pt, …)")
    p.add_argument("--out", type=Path, required=True, help="where the float16 weights and the log are written")
    p.add_argument("--data-dir", type=Path, help="Multi30k folder with train.en and val.en")
    p.add_argument("--device", default="cuda")
    p.add_argument("--minutes", type=float, default=5.0, help="training wall-clock budget (after data loading)")
    p.add_argument("--total-minutes", type=float, default=0.0,
                   help="end the whole run (rendering included) within this many minutes; 0 = no limit")
    p.add_argument("--limit", type=int, default=0, help="first N training sentences only (smoke tests)")
    p.add_argument("--seed", type=int, default=2, help="corpus rendering seed (default 2: new renderings)")
    p.add_argument("--copies", type=int, default=2)
    p.add_argument("--max-frames", type=int, default=12000, help="LFR frames per batch (default 12000)")
    p.add_argument("--lr", type=float, default=1.5e-3, help="peak learning rate (default 1.5e-3)")
    p.add_argument("--warmup-steps", type=int, default=150)
    p.add_argument("--jobs", type=int, default=16, help="corpus rendering processes")
    p.add_argument("--val-limit", type=int, default=300)
    p.add_argument("--average", type=int, default=3,
                   help="also write the mean of the last N epochs' weights (paraformer_weights_avg.pt; default 3)")
    p.add_argument("--spec-augment", action="store_true", help="SpecAugment masks on the device (off by default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="training-only model setting, e.g. dropout=0.0 (repeatable)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    overrides = {k: float(v) for k, v in (s.split("=", 1) for s in args.set)}
    opts = DeviceTrainOptions(work_dir=args.work_dir, init=args.init, out_dir=args.out, device=args.device,
                              minutes=args.minutes, total_minutes=args.total_minutes,
                              limit=args.limit, seed=args.seed, copies=args.copies, max_frames=args.max_frames,
                              lr=args.lr, warmup_steps=args.warmup_steps, jobs=args.jobs, val_limit=args.val_limit,
                              spec_augment=args.spec_augment, average=args.average,
                              overrides=overrides)
    if args.data_dir:
        opts.data_dir = args.data_dir
    train_on_device(opts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
