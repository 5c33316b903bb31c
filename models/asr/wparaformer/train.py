"""Train the Whisper-Paraformer head on cached Whisper encoder frames (resumable), validate by WER.

The Whisper encoder is frozen, so its frames are computed once per rendered utterance (:mod:`.corpus`) and the
head — a :class:`models.asr.paraformer.model.Paraformer` whose input is the 512-dim Whisper frame (20 ms) instead of
LFR fbank: a SAN-M adapter layer, the CIF predictor, the parallel decoder with glancing sampling and a CTC head —
trains on them alone, on the CPU. ``work_dir`` (ignored by git) holds the corpora, ``tokens.model``, ``last.pt``
(model, optimiser, position; saved every ``save_every_min`` minutes and at each epoch end), ``epochNN.pt`` and
``log.jsonl``. Running the same command again resumes.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.asr.paraformer.model import LossTotals, Paraformer, ParaformerConfig
from models.asr.paraformer.tokenizer import AsrTokenizer, train_asr_spm
from models.asr.wparaformer.corpus import EncodedUtterance, WhisperCorpusOptions, build_corpus, load_encoded
from models.asr.wparaformer.text_corpus import TextMix, build_text, read_exclusions, target_text, text_lines
from models.speech_corpus.voices import VoicePlan
from models.training import inverse_sqrt_lr

logger = logging.getLogger(__name__)


@dataclass
class WParaformerTrainOptions:
    """A training run (frames are Whisper encoder frames, 20 ms; ``max_frames`` bounds a padded batch)."""

    work_dir: Path = Path("work/wparaformer")
    multi30k: Path = Path("../shared/data/multi30k")
    exclude: tuple[Path, ...] = (Path("../shared/data/speech/human-en.tsv"),)
    mix: TextMix = field(default_factory=TextMix)
    dev_lines: int = 400
    epochs: int = 6
    stack: int = 3  # Whisper frames (20 ms) per head frame: the head runs at 60 ms, as Paraformer's LFR frames
    max_frames: int = 1500  # head frames (60 ms) per padded batch: small batches, many updates
    lr: float = 1.5e-3
    warmup_steps: int = 600
    vocab_size: int = 1000
    d_model: int = 256
    heads: int = 4
    ffn_dim: int = 1024
    # no SAN-M layers over the Whisper frames: with them CTC sat on its blank plateau for thousands of steps
    # (an MLP probe on the same frames learns at once); the predictor's convolution and the decoder's
    # cross-attention give the context
    encoder_layers: int = 0
    decoder_layers: int = 3
    ctc_weight: float = 0.3
    predictor_weight: float = 0.1
    align_weight: float = 1.0
    ctc_warmup_steps: int = 200  # CTC + quantity only (no decoder pass) while the CTC head finds its spikes
    dropout: float = 0.15
    chunk_train_prob: float = 0.25
    time_masks: int = 2
    time_mask_frames: int = 12  # Whisper frames (20 ms)
    threads: int = 2
    jobs: int = 2
    seed: int = 1
    save_every_min: float = 5.0
    max_minutes: float = 0.0
    progress: bool = True

    def model_config(self, vocab_size: int, whisper_dim: int = 512) -> ParaformerConfig:
        return ParaformerConfig(vocab_size=vocab_size, input_dim=whisper_dim * self.stack, d_model=self.d_model,
                                heads=self.heads, ffn_dim=self.ffn_dim, encoder_layers=self.encoder_layers,
                                decoder_layers=self.decoder_layers, ctc_weight=self.ctc_weight,
                                predictor_weight=self.predictor_weight, align_weight=self.align_weight,
                                dropout=self.dropout, chunk_train_prob=self.chunk_train_prob)


@dataclass(frozen=True)
class FrameStats:
    """Per-dimension mean and standard deviation of the Whisper frames: the head reads standardised frames (a few
    of Whisper's output dimensions are 20× larger than the rest, which made Adam's steps on their weights swamp
    everything else). Folded into the head's first layer on export, so the graphs read raw frames."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def estimate(cls, frames: Sequence[np.ndarray], *, limit: int = 3000) -> FrameStats:
        x = np.concatenate([np.asarray(f, dtype=np.float32) for f in frames[:limit]], axis=0)
        return cls(x.mean(axis=0), np.maximum(x.std(axis=0), 1e-3))

    def save(self, path: Path) -> None:
        np.savez(path, mean=self.mean, std=self.std)

    @classmethod
    def load(cls, path: Path) -> FrameStats:
        d = np.load(path)
        return cls(d["mean"], d["std"])

    @property
    def zero(self) -> np.ndarray:
        """A raw all-zero frame, standardised (what the runtime's zero padding becomes after folding)."""
        return (-self.mean / self.std).astype(np.float32)

    def apply(self, frames: np.ndarray) -> np.ndarray:
        return ((np.asarray(frames, dtype=np.float32) - self.mean) / self.std).astype(np.float32)


@dataclass
class Example:
    frames: np.ndarray  # float16 [T, 512] Whisper frames (20 ms)
    ids: list[int]
    target: str
    stack: int = 3

    @property
    def length(self) -> int:
        """Head frames (``stack`` Whisper frames each)."""
        return -(-self.frames.shape[0] // self.stack)


def _dev_text(opts: WParaformerTrainOptions, train: set[str], exclude: set[str]) -> list[str]:
    """Dev lines no training line has: Multi30k val captions and WordNet/fortune lines left out of training."""
    from models.asr.wparaformer.text_corpus import fortune_lines, unique_clean, wordnet_lines

    rng = random.Random(opts.seed + 77)
    pool = [x for x in unique_clean(list(wordnet_lines()) + list(fortune_lines()), exclude)
            if target_text(x) not in train]
    rng.shuffle(pool)
    val = [x for x in text_lines(opts.multi30k / "val.en") if target_text(x) not in train]
    half = opts.dev_lines // 2
    return pool[:half] + val[: opts.dev_lines - half]


def prepare(opts: WParaformerTrainOptions) -> tuple[AsrTokenizer, list[Example], list[Example]]:
    """Text, corpora (rendered + encoded), tokenizer: each cached in ``work_dir``."""
    opts.work_dir.mkdir(parents=True, exist_ok=True)
    exclude = read_exclusions([p for p in opts.exclude if p.is_file()])
    text_file = opts.work_dir / "train.txt"
    if text_file.is_file():
        lines = text_file.read_text(encoding="utf-8").splitlines()
    else:
        lines = build_text(opts.mix, multi30k=opts.multi30k / "train.en", exclude=exclude)
        text_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    train_dir = opts.work_dir / "corpus-train"
    build_corpus(WhisperCorpusOptions(lines=tuple(lines), out_dir=train_dir, seed=opts.seed, jobs=opts.jobs),
                 progress=opts.progress)
    dev_file = opts.work_dir / "dev.txt"
    if dev_file.is_file():
        dev = dev_file.read_text(encoding="utf-8").splitlines()
    else:
        dev = _dev_text(opts, {target_text(x) for x in lines}, exclude)
        dev_file.write_text("\n".join(dev) + "\n", encoding="utf-8")
    dev_dir = opts.work_dir / "corpus-dev"
    build_corpus(WhisperCorpusOptions(lines=tuple(dev), out_dir=dev_dir, seed=opts.seed + 1000, jobs=opts.jobs,
                                      plan=VoicePlan(split="heldout", festival_share=0.0, flite_share=0.0)),
                 progress=opts.progress)
    spm_file = opts.work_dir / "tokens.model"
    if not spm_file.is_file():
        train_asr_spm([target_text(x) for x in lines], opts.work_dir / "tokens", vocab_size=opts.vocab_size)
    tok = AsrTokenizer(spm_file)
    return (tok, examples(load_encoded(train_dir), tok, stack=opts.stack),
            examples(load_encoded(dev_dir), tok, stack=opts.stack, max_ratio=10.0))


def examples(utts: Sequence[EncodedUtterance], tok: AsrTokenizer, *, stack: int, max_ratio: float = 0.8
             ) -> list[Example]:
    """Token ids per utterance; utterances with more tokens than ``max_ratio`` × head frames are dropped (CIF and
    CTC cannot fit them)."""
    out = []
    for u in utts:
        ids = tok.encode(u.target)
        ex = Example(u.frames, ids, u.target, stack)
        if ids and len(ids) <= max_ratio * ex.length:
            out.append(ex)
    return out


def batch_indices(exs: Sequence[Example], *, max_frames: int, seed: int, epoch: int, shuffle: bool = True
                  ) -> list[list[int]]:
    """Length-bucketed batches (padded size ≤ ``max_frames``), in a per-epoch shuffled order."""
    rng = random.Random(seed * 1000 + epoch)
    order = sorted(range(len(exs)), key=lambda i: (exs[i].length, rng.random() if shuffle else i))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        t = exs[i].length
        if cur and t * (len(cur) + 1) > max_frames:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    if shuffle:
        rng.shuffle(batches)
    return batches


def collate(batch: Sequence[Example], stats: FrameStats, *, rng: np.random.Generator | None = None,
            time_masks: int = 0, mask_frames: int = 0) -> tuple[torch.Tensor, ...]:
    """Padded head frames ``[B, T, 512 k]`` (standardised, stacked; time masks on the Whisper frames when ``rng``
    is given), lengths, targets (-1 padded), target lengths."""
    from models.asr.wparaformer.features import stack_frames

    t = max(e.length for e in batch)
    n = max(len(e.ids) for e in batch)
    k = batch[0].stack
    x = np.zeros((len(batch), t, batch[0].frames.shape[1] * k), np.float32)
    y = np.full((len(batch), n), -1, np.int64)
    for i, e in enumerate(batch):
        f = stats.apply(e.frames)
        if rng is not None:
            for _ in range(time_masks):
                w = int(rng.integers(0, mask_frames + 1))
                s = int(rng.integers(0, max(1, f.shape[0] - w)))
                f[s : s + w] = 0.0
        x[i, : e.length] = stack_frames(f, k, pad=stats.zero)  # padded as raw zero frames, as at run time
        y[i, : len(e.ids)] = e.ids
    lengths = torch.tensor([e.length for e in batch], dtype=torch.int64)
    tl = torch.tensor([len(e.ids) for e in batch], dtype=torch.int64)
    return torch.from_numpy(x), lengths, torch.from_numpy(y), tl


def greedy_decode(model: Paraformer, exs: Sequence[Example], tok: AsrTokenizer, stats: FrameStats, *,
                  max_frames: int = 20000) -> list[str]:
    model.eval()
    out: dict[int, str] = {}
    with torch.no_grad():
        for idx in batch_indices(exs, max_frames=max_frames, seed=0, epoch=0, shuffle=False):
            x, lengths, _, _ = collate([exs[i] for i in idx], stats)
            for i, ids in zip(idx, model.greedy_ids(x, lengths), strict=True):
                out[i] = tok.decode(ids)
    return [out[i] for i in range(len(exs))]


def validate(model: Paraformer, exs: Sequence[Example], tok: AsrTokenizer, stats: FrameStats) -> float:
    from streaming.metrics.quality import word_error_rate

    return word_error_rate(greedy_decode(model, exs, tok, stats), [e.target for e in exs])


@dataclass
class TrainState:
    epoch: int = 0
    batch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def _save(path: Path, model: Paraformer, optim: torch.optim.Optimizer, state: TrainState) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optim": optim.state_dict(), "state": asdict(state),
                "config": model.config.to_dict(), "torch_rng": torch.get_rng_state()}, tmp)
    os.replace(tmp, path)


def train(opts: WParaformerTrainOptions) -> Path:
    """Train or resume until ``opts.epochs`` are done (or ``max_minutes`` pass); returns ``work_dir``."""
    from tqdm import tqdm

    torch.set_num_threads(opts.threads)
    tok, train_ex, dev_ex = prepare(opts)
    if not train_ex:
        raise ValueError("no usable training utterances")
    torch.manual_seed(opts.seed)
    model = Paraformer(opts.model_config(len(tok), train_ex[0].frames.shape[1]))
    stats_file = opts.work_dir / "frame_stats.npz"
    if not stats_file.is_file():
        rng_pick = random.Random(opts.seed)
        FrameStats.estimate(rng_pick.sample([e.frames for e in train_ex], min(3000, len(train_ex)))).save(stats_file)
    stats = FrameStats.load(stats_file)
    optim = torch.optim.AdamW(model.parameters(), lr=opts.lr, betas=(0.9, 0.98), weight_decay=0.01)
    state = TrainState()
    last = opts.work_dir / "last.pt"
    if last.is_file():
        ck = torch.load(last, map_location="cpu", weights_only=False)
        if ck["config"] != model.config.to_dict():
            raise ValueError(f"{last} holds a model with other settings: use another --work-dir or the same options")
        model.load_state_dict(ck["model"])
        optim.load_state_dict(ck["optim"])
        state = TrainState(**ck["state"])
        torch.set_rng_state(ck["torch_rng"])
        logger.info("resumed from %s: epoch %d batch %d step %d", last, state.epoch, state.batch, state.step)
    logger.info("Whisper-Paraformer head: %.2f M parameters, %d training / %d dev utterances",
                model.num_parameters() / 1e6, len(train_ex), len(dev_ex))
    started = last_save = time.monotonic()
    while state.epoch < opts.epochs:
        epoch = state.epoch + 1
        t_epoch = time.monotonic()
        batches = batch_indices(train_ex, max_frames=opts.max_frames, seed=opts.seed, epoch=epoch)
        rng = np.random.default_rng(opts.seed * 7919 + epoch * 104729 + state.batch)
        model.train()
        totals = LossTotals()
        bar = tqdm(total=len(batches), initial=state.batch, desc=f"epoch {epoch}/{opts.epochs}", unit="batch",
                   disable=not opts.progress)
        stopped = False
        for b in batches[state.batch :]:
            state.step += 1
            for g in optim.param_groups:
                g["lr"] = inverse_sqrt_lr(state.step, opts.lr, opts.warmup_steps)
            x, lengths, y, yl = collate([train_ex[i] for i in b], stats, rng=rng, time_masks=opts.time_masks,
                                        mask_frames=opts.time_mask_frames)
            out = model(x, lengths, y, yl, encoder_only=state.step <= opts.ctc_warmup_steps)
            optim.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optim.step()
            state.batch += 1
            totals.add(out)
            bar.update(1)
            bar.set_postfix(loss=f"{totals.mean('loss'):.3f}", acc=f"{totals.mean('acc'):.3f}")
            now = time.monotonic()
            if now - last_save > 60 * opts.save_every_min:
                _save(last, model, optim, state)
                last_save = now
            if opts.max_minutes and now - started > 60 * opts.max_minutes:
                stopped = True
                break
        bar.close()
        if stopped:
            _save(last, model, optim, state)
            logger.info("stopped after %.1f min (max_minutes); run again to resume", (time.monotonic() - started) / 60)
            return opts.work_dir
        state.epoch, state.batch = epoch, 0
        wer = validate(model, dev_ex, tok, stats)
        record = {"epoch": epoch, "step": state.step, "dev_wer": round(wer, 2),
                  "lr": inverse_sqrt_lr(state.step, opts.lr, opts.warmup_steps),
                  **totals.record(),
                  "epoch_minutes": round((time.monotonic() - t_epoch) / 60, 2)}
        logger.info("epoch %d: %s", epoch, record)
        state.history.append(record)
        torch.save({"model": model.state_dict(), "config": model.config.to_dict()},
                   opts.work_dir / f"epoch{epoch:02d}.pt")
        _save(last, model, optim, state)
        with open(opts.work_dir / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    return opts.work_dir


def average_last(work_dir: Path, n: int) -> tuple[Paraformer, list[Path]]:
    """The mean of the last ``n`` epoch checkpoints' weights (and the files used)."""
    files = sorted(work_dir.glob("epoch*.pt"))[-max(1, n) :]
    if not files:
        raise FileNotFoundError(f"{work_dir} has no epoch checkpoints: train first")
    cks = [torch.load(f, map_location="cpu", weights_only=False) for f in files]
    model = Paraformer(ParaformerConfig.from_dict(cks[-1]["config"]))
    model.load_state_dict({k: sum(c["model"][k].float() for c in cks) / len(cks) for k in cks[-1]["model"]})
    return model.eval(), files


def history(work_dir: Path) -> list[dict[str, Any]]:
    log = work_dir / "log.jsonl"
    if not log.is_file():
        return []
    return [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines() if x.strip()]

