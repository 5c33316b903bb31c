"""``simulsub train whisper-paraformer``: the default ASR's head on the frozen Whisper-base encoder (needs
``[train]``; resumable). Hooked into ``simulsub train`` by :func:`add_family`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from app.asr import DEFAULT_ASR_DIR
from app.commands.training import training_module
from app.errors import UserError

logger = logging.getLogger(__name__)


def add_family(fam: Any) -> None:
    p = fam.add_parser("whisper-paraformer",
                       help="CIF predictor + parallel decoder on the frozen Whisper-base encoder (the default ASR), "
                            "trained on espeak/festival/flite renderings of broad English text")
    p.add_argument("--work-dir", default="work/wparaformer",
                   help="corpora, checkpoints, logs (default work/wparaformer)")
    p.add_argument("--data-dir", default="../shared/data/multi30k", help="Multi30k folder (train.en, val.en)")
    p.add_argument("--exclude", action="append", metavar="TSV", default=None,
                   help="test-set transcripts (path<TAB>text lines) no training line may match (default "
                        "../shared/data/speech/human-en.tsv); repeatable")
    p.add_argument("--epochs", type=int, default=6, help="epochs to train in total (default 6)")
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="stop (saving) after this many minutes of training; run again to resume (default: no limit)")
    p.add_argument("--max-frames", type=int, default=1500,
                   help="head frames (60 ms) per padded batch (default 1500: many small updates; may change when "
                        "resuming)")
    p.add_argument("--lr", type=float, default=1.5e-3, help="peak learning rate (default 1.5e-3)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--jobs", type=int, default=2, help="processes that render and encode the corpus (default 2)")
    p.add_argument("--export", metavar="DIR", nargs="?", const=str(DEFAULT_ASR_DIR),
                   help="after training, average the last --average epochs and write the model directory (int8 "
                        "ONNX) to DIR (default: models/pretrained/whisper-paraformer-en)")
    p.add_argument("--average", type=int, default=2, help="epoch checkpoints to average on export (default 2)")
    p.add_argument("--export-only", action="store_true", help="export the existing checkpoints without training")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    train_mod = training_module("models.asr.wparaformer.train")
    opts = train_mod.WParaformerTrainOptions(
        work_dir=Path(args.work_dir), multi30k=Path(args.data_dir),
        exclude=tuple(Path(p) for p in (args.exclude or ["../shared/data/speech/human-en.tsv"])),
        epochs=args.epochs, max_minutes=args.max_minutes, threads=args.threads, jobs=args.jobs,
        max_frames=args.max_frames, lr=args.lr)
    if min(args.epochs, args.threads, args.jobs, args.average, args.max_frames) < 1 or args.lr <= 0:
        raise UserError("--epochs, --threads, --jobs, --average and --max-frames must be ≥ 1, --lr > 0")
    if not (opts.multi30k / "train.en").is_file():
        raise UserError(f"{opts.multi30k}/train.en does not exist: pass --data-dir (the Multi30k folder)")
    try:
        if not args.export_only:
            train_mod.train(opts)
        if args.export:
            from models.asr.wparaformer.export import export_trained

            out = export_trained(opts.work_dir, Path(args.export), average=args.average, stack=opts.stack)
            print(f"exported {out}")
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    return 0
