"""Train the FReTNA NAT on distilled data: one command, resumable by epoch, seeded, validation BLEU per epoch.

Data: ``simulsub distill`` output (``distill.jsonl``): every training sentence with the teacher's full
translation, plus ``prefixes_per_sentence`` sampled (seeded) word prefixes with the teacher's translation of
each prefix, because re-translation feeds prefixes. Tokens: the AR model's joint SentencePiece model.
Checkpoints ``epochNN.pt`` and ``log.jsonl`` go to ``work_dir`` (outside git); ``finalize`` averages the
last epochs and writes the ONNX directory (fp32 + int8) that :class:`models.nat.runtime.NatTranslator` loads.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import sacrebleu
import sentencepiece as spm
import torch
from tqdm import tqdm

from models.marian.batching import make_batches
from models.marian.distill import read_distilled
from models.marian.export import average_state_dicts
from models.nat.export import convert
from models.nat.init_from_ar import (
    init_from_ar,
    init_from_nat,
    is_nat_work_dir,
    load_ar_state,
    load_nat_state,
    nat_config_like_ar,
)
from models.nat.model import ModelConfig, NATModel, anneal_ratio, greedy_decode
from models.nat.shortlist import Shortlist, build_shortlist
from models.text.data import load_split, multi30k_dir
from models.training import cpu_has_bf16, guard_options, inverse_sqrt_lr, resume_last_epoch, save_epoch

logger = logging.getLogger(__name__)
EOS_ID = 1


@dataclass
class NatTrainOptions:
    """Everything that determines a run (saved in ``work_dir/options.json``)."""

    distill_file: Path = Path("work/distill/distill.jsonl")
    spm_model: Path = Path("models/pretrained/marian-en-de/source.spm")
    work_dir: Path = Path("work/nat-en-de")
    data_dir: Path = field(default_factory=multi30k_dir)
    # AR (Marian) or NAT work directory whose averaged checkpoints initialise the NAT (its width then fixes the
    # NAT's; the layer counts below may be smaller: evenly spaced source layers are taken); empty: random
    # initialisation with the sizes below
    init_from: str = "work/marian-en-de"
    prefixes_per_sentence: int = 1
    d_model: int = 256
    heads: int = 4
    ffn_dim: int = 1024
    encoder_layers: int = 3
    decoder_layers: int = 3
    upsample: int = 2
    dropout: float = 0.1
    max_tokens: int = 4000
    lr: float = 5e-4
    warmup_steps: int = 500
    clip_norm: float = 1.0
    glance_start: float = 0.5
    glance_end: float = 0.3
    epochs: int = 6
    average_last: int = 3
    bf16: bool = True  # bfloat16 autocast where the CPU has native bf16 (avx512_bf16 / AMX); fp32 elsewhere
    seed: int = 1
    threads: int = 2
    val_limit: int = 0

    def to_json(self) -> dict[str, object]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


InitState = dict[str, torch.Tensor] | tuple[dict[str, torch.Tensor], ModelConfig] | None


def build_config(opts: NatTrainOptions, vocab_size: int) -> tuple[ModelConfig, InitState]:
    """The NAT config and, with ``init_from``, the weights to start from: an AR state dict, or a trained NAT's
    state dict with its config."""
    if opts.init_from and is_nat_work_dir(Path(opts.init_from)):
        nat_state, source_cfg = load_nat_state(Path(opts.init_from))
        cfg = replace(source_cfg, encoder_layers=opts.encoder_layers, decoder_layers=opts.decoder_layers,
                      dropout=opts.dropout)
        return cfg, (nat_state, source_cfg)
    if opts.init_from:
        ar_state, arch = load_ar_state(Path(opts.init_from))
        cfg = nat_config_like_ar(arch, vocab_size, upsample=opts.upsample, dropout=opts.dropout,
                                 encoder_layers=opts.encoder_layers, decoder_layers=opts.decoder_layers)
        return cfg, ar_state
    cfg = ModelConfig(vocab_size=vocab_size, d_model=opts.d_model, heads=opts.heads, ffn_dim=opts.ffn_dim,
                      encoder_layers=opts.encoder_layers, decoder_layers=opts.decoder_layers,
                      upsample=opts.upsample, dropout=opts.dropout)
    return cfg, None


def build_pairs(opts: NatTrainOptions) -> tuple[list[str], list[str]]:
    """Full distilled pairs plus sampled prefix pairs (deterministic for ``opts.seed``)."""
    src: list[str] = []
    tgt: list[str] = []
    for rec in read_distilled(opts.distill_file):
        src.append(rec.source)
        tgt.append(rec.full)
        if rec.prefixes and opts.prefixes_per_sentence:
            rng = random.Random(opts.seed * 1_000_003 + rec.index)
            picks = rng.sample(range(len(rec.prefixes)), min(opts.prefixes_per_sentence, len(rec.prefixes)))
            words = rec.source.split()
            for j in sorted(picks):
                src.append(" ".join(words[: j + 1]))
                tgt.append(rec.prefixes[j])
    if not src:
        raise ValueError(f"{opts.distill_file} holds no pairs: run `simulsub distill` first")
    return src, tgt


def _collate(idx: list[int], src: list[list[int]], tgt: list[list[int]], pad: int) -> tuple[torch.Tensor, ...]:
    s = torch.full((len(idx), max(len(src[i]) for i in idx)), pad, dtype=torch.long)
    t = torch.zeros((len(idx), max(1, max(len(tgt[i]) for i in idx))), dtype=torch.long)
    lens = torch.tensor([len(tgt[i]) for i in idx], dtype=torch.long)
    for r, i in enumerate(idx):
        s[r, : len(src[i])] = torch.tensor(src[i])
        if tgt[i]:
            t[r, : len(tgt[i])] = torch.tensor(tgt[i])
    return s, t, lens


def evaluate_bleu(model: NATModel, sp: spm.SentencePieceProcessor, sources: list[str], refs: list[str]) -> float:
    """Greedy one-pass BLEU of ``model`` (PyTorch) on ``sources``."""
    model.eval()
    hyps: list[str] = []
    for start in range(0, len(sources), 64):
        batch = [[*ids, EOS_ID] for ids in sp.encode(sources[start : start + 64])]
        s = torch.full((len(batch), max(map(len, batch))), model.cfg.pad_id, dtype=torch.long)
        for r, ids in enumerate(batch):
            s[r, : len(ids)] = torch.tensor(ids)
        hyps.extend(sp.decode(out) for out in greedy_decode(model, s))
    return float(sacrebleu.corpus_bleu(hyps, [refs]).score)


def train(opts: NatTrainOptions) -> Path:
    """Run (or resume) training; returns ``work_dir``."""
    torch.set_num_threads(opts.threads)
    work = opts.work_dir
    work.mkdir(parents=True, exist_ok=True)
    guard_options(work, opts.to_json())
    sp = spm.SentencePieceProcessor(model_file=str(opts.spm_model))
    src_text, tgt_text = build_pairs(opts)
    src_ids = [[*ids, EOS_ID] for ids in sp.encode(src_text)]
    tgt_ids: list[list[int]] = sp.encode(tgt_text)
    keep = [i for i in range(len(src_ids)) if len(tgt_ids[i]) <= opts.upsample * len(src_ids[i])]
    logger.info("%d pairs (%d dropped: target longer than %d× source)", len(keep), len(src_ids) - len(keep),
                opts.upsample)
    src_ids, tgt_ids = [src_ids[i] for i in keep], [tgt_ids[i] for i in keep]
    val = load_split(opts.data_dir, "val", "en", "de")
    val_src, val_ref = val.source, val.target
    if opts.val_limit:
        val_src, val_ref = val_src[: opts.val_limit], val_ref[: opts.val_limit]

    cfg, ar_state = build_config(opts, sp.get_piece_size())
    random.seed(opts.seed)
    torch.manual_seed(opts.seed)
    model = NATModel(cfg)
    if isinstance(ar_state, tuple):
        init_from_nat(model, *ar_state)
    elif ar_state is not None:
        init_from_ar(model, ar_state)
    bf16 = opts.bf16 and cpu_has_bf16()
    logger.info("NAT %.2f M parameters, %s", sum(p.numel() for p in model.parameters()) / 1e6,
                "bf16 autocast" if bf16 else "fp32")
    optim = torch.optim.AdamW(model.parameters(), lr=opts.lr, betas=(0.9, 0.98), eps=1e-9)
    start_epoch, step = resume_last_epoch(work, model, optim)
    n_batches = len(make_batches(src_ids, tgt_ids, max_tokens=opts.max_tokens, seed=0))
    total_steps = n_batches * opts.epochs
    for epoch in range(start_epoch, opts.epochs + 1):
        model.train()
        batches = make_batches(src_ids, tgt_ids, max_tokens=opts.max_tokens, seed=opts.seed * 1000 + epoch)
        t0, loss_sum = time.time(), 0.0
        bar = tqdm(batches, desc=f"nat epoch {epoch}/{opts.epochs}", unit="batch", mininterval=5.0)
        for n, idx in enumerate(bar, 1):
            s, t, lens = _collate(idx, src_ids, tgt_ids, cfg.pad_id)
            step += 1
            for g in optim.param_groups:
                g["lr"] = inverse_sqrt_lr(step, opts.lr, opts.warmup_steps)
            ratio = anneal_ratio(step, total_steps, opts.glance_start, opts.glance_end)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = model.loss(s, t, lens, glance_ratio=ratio)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), opts.clip_norm)
            optim.step()
            loss_sum += float(loss.detach())
            bar.set_postfix(loss=f"{loss_sum / n:.3f}", glance=f"{ratio:.2f}", refresh=False)
        bar.close()
        save_epoch(work, epoch, step, asdict(cfg), model, optim)
        bleu = evaluate_bleu(model, sp, val_src, val_ref)
        rec = {"epoch": epoch, "step": step, "loss": round(loss_sum / max(len(batches), 1), 4),
               "val_bleu": round(bleu, 2), "train_seconds": round(time.time() - t0, 1)}
        logger.info("%s", rec)
        with open(work / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
    return work


def shortlist_from_distill(opts: NatTrainOptions, sp: spm.SentencePieceProcessor, cfg: ModelConfig) -> Shortlist:
    """The lexical shortlist of the training pairs (distilled full sentences and their sampled prefixes)."""
    src_text, tgt_text = build_pairs(opts)
    return build_shortlist(sp.encode(src_text), sp.encode(tgt_text), cfg.vocab_size, cfg.blank_id)


def finalize(work_dir: Path, out_dir: Path, spm_model: Path, *, average_last: int = 3,
             shortlist: bool = True) -> Path:
    """Average the last ``average_last`` epoch checkpoints and write the ONNX runtime directory (fp32 + int8).

    With ``shortlist``, also the lexical shortlist of the run's training pairs (read from ``options.json``).
    """
    ckpts = sorted(work_dir.glob("epoch*.pt"))[-average_last:]
    if not ckpts:
        raise FileNotFoundError(f"no epoch checkpoints in {work_dir}: train first")
    cfg = ModelConfig(**torch.load(ckpts[-1], map_location="cpu", weights_only=False)["config"])
    model = NATModel(cfg)
    model.load_state_dict(average_state_dicts(ckpts))
    table = None
    if shortlist:
        saved = json.loads((work_dir / "options.json").read_text(encoding="utf-8"))
        known = {k: v for k, v in saved.items() if k in NatTrainOptions.__dataclass_fields__}
        opts = NatTrainOptions(**known)
        opts.distill_file, opts.data_dir = Path(str(opts.distill_file)), Path(str(opts.data_dir))
        table = shortlist_from_distill(opts, spm.SentencePieceProcessor(model_file=str(spm_model)), cfg)
    return convert(model.eval(), spm_model, out_dir, quantization="int8", force=True, shortlist=table)
