"""Train the default Marian en→de model on Multi30k: one command, resumable, seeded, validation BLEU per epoch.

Checkpoints (``epochNN.pt``) and ``log.jsonl`` go to ``work_dir`` (outside git); ``finalize`` averages the
last epochs and writes the CTranslate2 int8 directory that the app loads.
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sacrebleu
import torch
import torch.nn.functional as F
from tqdm import tqdm

from models.marian.batching import collate, make_batches
from models.marian.export import EOS_ID, MarianArch, average_state_dicts, build_model, convert_to_ct2, pad_embedding
from models.marian.runtime import CT2Translator, DecodeOptions
from models.text.data import load_split, multi30k_dir
from models.text.spm import train_joint_spm
from models.training import guard_options, inverse_sqrt_lr
from streaming.errors import WorkDirError

logger = logging.getLogger(__name__)


@dataclass
class MarianTrainOptions:
    """Everything that determines a training run (saved in ``work_dir/options.json``)."""

    work_dir: Path = Path("work/marian-en-de")
    data_dir: Path = field(default_factory=multi30k_dir)
    src_lang: str = "en"
    tgt_lang: str = "de"
    vocab_size: int = 8000
    d_model: int = 256
    layers: int = 3
    heads: int = 4
    ffn_dim: int = 1024
    dropout: float = 0.1
    label_smoothing: float = 0.1
    max_tokens: int = 2500
    lr: float = 1e-3
    warmup_steps: int = 800
    weight_decay: float = 0.0
    clip_norm: float = 1.0
    epochs: int = 13
    seed: int = 1
    threads: int = 2
    limit: int = 0  # use only the first N training pairs (0 = all); for smoke tests

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


def _checkpoints(work_dir: Path) -> list[Path]:
    return sorted(work_dir.glob("epoch*.pt"))


def _encode(sp_path: Path, texts: list[str]) -> list[list[int]]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(sp_path))
    return [[*ids, EOS_ID] for ids in sp.encode(texts)]


def evaluate_bleu(model: torch.nn.Module, spm_model: Path, sources: list[str], refs: list[str], beam: int) -> float:
    """Corpus BLEU of ``model`` converted to CTranslate2 int8, decoding ``sources`` with ``beam``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = convert_to_ct2(model, spm_model, Path(tmp) / "ct2", quantization="int8")  # type: ignore[arg-type]
        tr = CT2Translator(out, intra_threads=2)
        hyps = tr.translate(sources, DecodeOptions(beam_size=beam))
    return float(sacrebleu.corpus_bleu(hyps, [refs]).score)


def train(opts: MarianTrainOptions) -> Path:
    """Run (or resume) training; returns ``work_dir``."""
    torch.set_num_threads(opts.threads)
    work = opts.work_dir
    work.mkdir(parents=True, exist_ok=True)
    guard_options(work, opts.to_json())

    train_set = load_split(opts.data_dir, "train", opts.src_lang, opts.tgt_lang)
    val_set = load_split(opts.data_dir, "val", opts.src_lang, opts.tgt_lang)
    src_train, tgt_train = train_set.source, train_set.target
    if opts.limit:
        src_train, tgt_train = src_train[: opts.limit], tgt_train[: opts.limit]

    spm_model = work / "spm.model"
    if not spm_model.exists():
        logger.info("training SentencePiece (%d pieces)", opts.vocab_size)
        train_joint_spm(src_train + tgt_train, work / "spm", vocab_size=opts.vocab_size, seed=opts.seed)
    src_ids, tgt_ids = _encode(spm_model, src_train), _encode(spm_model, tgt_train)
    import sentencepiece as spm

    n_pieces = spm.SentencePieceProcessor(model_file=str(spm_model)).get_piece_size()
    arch = MarianArch(
        vocab_size=n_pieces + 1,
        d_model=opts.d_model,
        encoder_layers=opts.layers,
        decoder_layers=opts.layers,
        heads=opts.heads,
        ffn_dim=opts.ffn_dim,
        dropout=opts.dropout,
    )
    (work / "arch.json").write_text(json.dumps(asdict(arch), indent=2))
    random.seed(opts.seed)
    torch.manual_seed(opts.seed)
    model = build_model(arch)
    opt = torch.optim.AdamW(model.parameters(), lr=opts.lr, betas=(0.9, 0.98), eps=1e-9, weight_decay=opts.weight_decay)
    start_epoch, step = 1, 0
    ckpts = _checkpoints(work)
    if ckpts:
        state = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_epoch, step = state["epoch"] + 1, state["step"]
        torch.set_rng_state(state["torch_rng"])
        logger.info("resumed from %s (epoch %d, step %d)", ckpts[-1].name, state["epoch"], step)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("model: %.2f M parameters, vocab %d", n_params / 1e6, arch.vocab_size)

    pad = arch.pad_id
    for epoch in range(start_epoch, opts.epochs + 1):
        model.train()
        batches = make_batches(src_ids, tgt_ids, max_tokens=opts.max_tokens, seed=opts.seed * 1000 + epoch)
        t0, tok_total, loss_total = time.time(), 0, 0.0
        bar = tqdm(batches, desc=f"epoch {epoch}/{opts.epochs}", unit="batch", mininterval=5.0)
        for idx in bar:
            b = collate(idx, src_ids, tgt_ids, pad_id=pad, decoder_start_id=pad)
            step += 1
            for g in opt.param_groups:
                g["lr"] = inverse_sqrt_lr(step, opts.lr, opts.warmup_steps)
            out = model(input_ids=b.input_ids, attention_mask=b.attention_mask, decoder_input_ids=b.decoder_input_ids)
            logits = out.logits[..., :pad]  # <pad> is the last id: never a target, never in the softmax
            loss = F.cross_entropy(
                logits.reshape(-1, pad), b.labels.reshape(-1), ignore_index=-100,
                label_smoothing=opts.label_smoothing, reduction="sum",
            )
            n = b.n_target_tokens
            opt.zero_grad(set_to_none=True)
            (loss / n).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), opts.clip_norm)
            opt.step()
            with torch.no_grad():
                pad_embedding(model).zero_()
            tok_total += n
            loss_total += float(loss.detach())
            bar.set_postfix(loss=f"{loss_total / tok_total:.3f}", tok_s=f"{tok_total / (time.time() - t0):.0f}")
        bar.close()
        train_s = time.time() - t0
        ckpt = work / f"epoch{epoch:02d}.pt"
        torch.save(
            {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "step": step,
             "torch_rng": torch.get_rng_state()},
            ckpt.with_suffix(".tmp"),
        )
        ckpt.with_suffix(".tmp").rename(ckpt)
        model.eval()
        bleu = evaluate_bleu(model, spm_model, val_set.source, val_set.target, beam=1)
        rec = {"epoch": epoch, "step": step, "train_loss": loss_total / tok_total, "val_bleu_greedy": round(bleu, 2),
               "train_seconds": round(train_s, 1), "tokens_per_second": round(tok_total / train_s)}
        logger.info("%s", rec)
        with open(work / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
    return work


def finalize(work_dir: Path, out_dir: Path, *, average_last: int = 5, quantization: str = "int8") -> Path:
    """Average the last ``average_last`` epoch checkpoints and write the CTranslate2 model directory."""
    ckpts = _checkpoints(work_dir)[-average_last:]
    if not ckpts:
        raise WorkDirError(f"no epoch checkpoints in {work_dir}: run training first")
    arch = MarianArch(**json.loads((work_dir / "arch.json").read_text()))
    model = build_model(arch)
    model.load_state_dict(average_state_dicts(ckpts))
    model.eval()
    meta = {"checkpoints": [p.name for p in ckpts], "max_source_tokens": arch.max_positions,
            "parameters": sum(p.numel() for p in model.parameters())}
    return convert_to_ct2(model, work_dir / "spm.model", out_dir, quantization=quantization, metadata=meta)
