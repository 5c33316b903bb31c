"""Train the wait-k model: one model for every k (k sampled per batch), resumable by epoch, seeded.

Why one multi-k model rather than one per k: Elbayad et al. (2020, "Efficient wait-k models for simultaneous
machine translation") find that training with k sampled per batch matches or beats dedicated per-k models at
every test k, and here it costs one training run instead of five (two CPU cores) and one committed model
instead of five (size budget). ``k`` is drawn uniformly from 1..``k_max`` or "whole source".

Data: the AR teacher's distilled translations (``simulsub distill``) of Multi30k train, as for the NAT:
sequence-level distillation gives simpler, more monotonic targets, which is what a wait-k model with limited
look-ahead can learn. Initialisation: the AR model's averaged checkpoints (same layout; its bidirectional
encoder becomes causal and is fine-tuned). Checkpoints ``epochNN.pt`` and ``log.jsonl`` (validation BLEU at
k = 3 and k = 9 per epoch) go to ``work_dir``; ``finalize`` averages the last epochs and exports ONNX.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sacrebleu
import sentencepiece as spm
import torch
import torch.nn.functional as F
from tqdm import tqdm

from models.marian.batching import make_batches
from models.marian.distill import read_distilled
from models.marian.export import average_state_dicts
from models.nat.init_from_ar import load_ar_state
from models.text.data import load_split, multi30k_dir
from models.training import cpu_has_bf16, guard_options, inverse_sqrt_lr, resume_last_epoch, save_epoch
from models.waitk.export import convert
from models.waitk.model import EOS_ID, FULL_SOURCE, WaitkConfig, WaitkModel, init_from_ar, word_index
from models.waitk.torch_step import TorchIncremental
from streaming.policies.waitk import WaitkPolicy
from streaming.types import SourceState

logger = logging.getLogger(__name__)


@dataclass
class WaitkTrainOptions:
    """Everything that determines a run (saved in ``work_dir/options.json``)."""

    distill_file: Path = Path("work/distill/distill.jsonl")
    spm_model: Path = Path("models/pretrained/marian-en-de/source.spm")
    work_dir: Path = Path("work/waitk-en-de")
    data_dir: Path = field(default_factory=multi30k_dir)
    init_from: str = "work/marian-en-de"  # AR work dir (its size then fixes the model's); '' = random init
    k_max: int = 10
    d_model: int = 256
    heads: int = 4
    ffn_dim: int = 1024
    layers: int = 3
    dropout: float = 0.1
    label_smoothing: float = 0.1
    max_tokens: int = 4000
    lr: float = 3e-4
    warmup_steps: int = 300
    clip_norm: float = 1.0
    epochs: int = 5
    bf16: bool = True
    seed: int = 1
    threads: int = 2
    val_limit: int = 300

    def to_json(self) -> dict[str, object]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


@dataclass
class Example:
    src: list[int]  # word-by-word pieces + </s>
    src_word: list[int]  # 0-based word per source token (</s>: number of words)
    tgt: list[int]  # labels incl. </s>
    tgt_word: list[int]  # 1-based target word per label (</s>: FULL_SOURCE)


def make_example(sp: spm.SentencePieceProcessor, source: str, target: str) -> Example:
    """Tokenise a pair exactly as inference reads it (source word by word)."""
    src: list[int] = []
    src_word: list[int] = []
    words = source.split()
    for i, w in enumerate(words):
        ids = sp.encode(w, out_type=int)
        src.extend(ids)
        src_word.extend([i] * len(ids))
    src.append(EOS_ID)
    src_word.append(len(words))
    tgt_ids: list[int] = sp.encode(target, out_type=int)
    tgt_word = [w + 1 for w in word_index([sp.id_to_piece(i) for i in tgt_ids])]
    return Example(src, src_word, [*tgt_ids, EOS_ID], [*tgt_word, FULL_SOURCE])


def collate(batch: list[Example], pad: int) -> dict[str, torch.Tensor]:
    b, s_len, t_len = len(batch), max(len(e.src) for e in batch), max(len(e.tgt) for e in batch)
    src = torch.full((b, s_len), pad, dtype=torch.long)
    src_word = torch.full((b, s_len), FULL_SOURCE, dtype=torch.long)
    tgt_in = torch.full((b, t_len), pad, dtype=torch.long)
    labels = torch.full((b, t_len), -100, dtype=torch.long)
    tgt_word = torch.full((b, t_len), FULL_SOURCE, dtype=torch.long)
    n_words = torch.tensor([e.src_word[-1] for e in batch], dtype=torch.long)
    for r, e in enumerate(batch):
        src[r, : len(e.src)] = torch.tensor(e.src)
        src_word[r, : len(e.src)] = torch.tensor(e.src_word)
        tgt_in[r, 1 : len(e.tgt)] = torch.tensor(e.tgt[:-1])
        labels[r, : len(e.tgt)] = torch.tensor(e.tgt)
        tgt_word[r, : len(e.tgt)] = torch.tensor(e.tgt_word)
    return {"src": src, "src_word": src_word, "n_words": n_words, "tgt_in": tgt_in, "labels": labels,
            "tgt_word": tgt_word}


def translate_waitk(backend: TorchIncremental, source: str, k: int) -> str:
    """Word-by-word simultaneous translation of one sentence (what the streaming core does)."""
    policy = WaitkPolicy(backend, k)
    words = tuple(source.split())
    for i in range(1, len(words) + 1):
        policy.update(SourceState(words[:i], float(i), finished=i == len(words)))
    return policy.finish().text


def evaluate_bleu(model: WaitkModel, sp: spm.SentencePieceProcessor, sources: list[str], refs: list[str],
                  k: int) -> float:
    backend = TorchIncremental(model, sp)
    hyps = [translate_waitk(backend, s, k) for s in sources]
    return float(sacrebleu.corpus_bleu(hyps, [refs]).score)


def train(opts: WaitkTrainOptions) -> Path:
    """Run (or resume) training; returns ``work_dir``."""
    torch.set_num_threads(opts.threads)
    work = opts.work_dir
    work.mkdir(parents=True, exist_ok=True)
    guard_options(work, opts.to_json())
    if not opts.distill_file.is_file():
        raise FileNotFoundError(f"{opts.distill_file} does not exist: run `simulsub distill` first")
    sp = spm.SentencePieceProcessor(model_file=str(opts.spm_model))
    examples = [make_example(sp, r.source, r.full) for r in read_distilled(opts.distill_file)]
    val = load_split(opts.data_dir, "val", "en", "de")
    val_src, val_ref = val.source[: opts.val_limit or None], val.target[: opts.val_limit or None]
    ar_state = None
    if opts.init_from:
        ar_state, arch = load_ar_state(Path(opts.init_from))
        cfg = WaitkConfig(vocab_size=int(arch["vocab_size"]), d_model=int(arch["d_model"]), heads=int(arch["heads"]),
                          ffn_dim=int(arch["ffn_dim"]), encoder_layers=int(arch["encoder_layers"]),
                          decoder_layers=int(arch["decoder_layers"]), dropout=opts.dropout,
                          max_positions=int(arch["max_positions"]))
    else:
        cfg = WaitkConfig(vocab_size=sp.get_piece_size() + 1, d_model=opts.d_model, heads=opts.heads,
                          ffn_dim=opts.ffn_dim, encoder_layers=opts.layers, decoder_layers=opts.layers,
                          dropout=opts.dropout)
    if cfg.vocab_size != sp.get_piece_size() + 1:
        raise ValueError(f"{opts.spm_model} has {sp.get_piece_size()} pieces; the model expects {cfg.vocab_size - 1}")
    random.seed(opts.seed)
    torch.manual_seed(opts.seed)
    model = WaitkModel(cfg)
    if ar_state is not None:
        init_from_ar(model, ar_state)
    optim = torch.optim.AdamW(model.parameters(), lr=opts.lr, betas=(0.9, 0.98), eps=1e-9)
    start_epoch, step = resume_last_epoch(work, model, optim)
    bf16 = opts.bf16 and cpu_has_bf16()
    logger.info("wait-k model %.2f M parameters, %d pairs, %s", sum(p.numel() for p in model.parameters()) / 1e6,
                len(examples), "bf16 autocast" if bf16 else "fp32")
    src_lens = [e.src for e in examples]
    tgt_lens = [e.tgt for e in examples]
    k_values = [*range(1, opts.k_max + 1), FULL_SOURCE]
    for epoch in range(start_epoch, opts.epochs + 1):
        model.train()
        rng = random.Random(opts.seed * 7919 + epoch)
        batches = make_batches(src_lens, tgt_lens, max_tokens=opts.max_tokens, seed=opts.seed * 1000 + epoch)
        t0, loss_sum, tok_sum = time.time(), 0.0, 0
        bar = tqdm(batches, desc=f"waitk epoch {epoch}/{opts.epochs}", unit="batch", mininterval=5.0)
        for idx in bar:
            b = collate([examples[i] for i in idx], cfg.pad_id)
            k = rng.choice(k_values)
            step += 1
            for g in optim.param_groups:
                g["lr"] = inverse_sqrt_lr(step, opts.lr, opts.warmup_steps)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(b["src"], b["src_word"], b["n_words"], b["tgt_in"], b["tgt_word"], k)
            logits = logits.float()[..., : cfg.pad_id]
            loss = F.cross_entropy(logits.reshape(-1, cfg.pad_id), b["labels"].reshape(-1), ignore_index=-100,
                                   label_smoothing=opts.label_smoothing, reduction="sum")
            n = int((b["labels"] != -100).sum())
            optim.zero_grad(set_to_none=True)
            (loss / n).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), opts.clip_norm)
            optim.step()
            with torch.no_grad():
                model.embed.weight[cfg.pad_id].zero_()
            loss_sum += float(loss.detach())
            tok_sum += n
            bar.set_postfix(loss=f"{loss_sum / tok_sum:.3f}", refresh=False)
        bar.close()
        save_epoch(work, epoch, step, asdict(cfg), model, optim)
        model.eval()
        rec = {"epoch": epoch, "step": step, "loss": round(loss_sum / max(tok_sum, 1), 4),
               "train_seconds": round(time.time() - t0, 1)}
        for k in (3, 9):
            rec[f"val_bleu_k{k}"] = round(evaluate_bleu(model, sp, val_src, val_ref, k), 2)
        logger.info("%s", rec)
        with open(work / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
    return work


def finalize(work_dir: Path, out_dir: Path, spm_model: Path, *, average_last: int = 3) -> Path:
    """Average the last ``average_last`` epoch checkpoints and write the ONNX directory (fp32 + int8)."""
    ckpts = sorted(work_dir.glob("epoch*.pt"))[-average_last:]
    if not ckpts:
        raise FileNotFoundError(f"no epoch checkpoints in {work_dir}: train first")
    cfg = WaitkConfig(**torch.load(ckpts[-1], map_location="cpu", weights_only=False)["config"])
    model = WaitkModel(cfg)
    model.load_state_dict(average_state_dicts(ckpts))
    return convert(model.eval(), spm_model, out_dir, quantization="int8", force=True)
