"""``simulsub train paraformer``: the streaming ASR model (synthetic speech, resumable; needs ``[train]``).

Hooked into ``simulsub train`` by :func:`add_family` (called from :mod:`app.commands.train`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from app.commands.training import training_module
from app.errors import UserError

DEFAULT_EXPORT = Path(__file__).resolve().parents[2] / "models" / "pretrained" / "paraformer-en"


def add_family(fam: Any) -> None:
    """Add ``paraformer`` to the ``simulsub train`` sub-parsers ``fam``."""
    p = fam.add_parser("paraformer", help="the Paraformer ASR model on espeak/festival renderings of Multi30k")
    p.add_argument("--work-dir", default="work/paraformer", help="corpora, checkpoints, logs (default work/paraformer)")
    p.add_argument("--data-dir", help="Multi30k folder (default ../shared/data/multi30k or $SIMULSUB_MULTI30K)")
    p.add_argument("--epochs", type=int, default=8, help="epochs to train in total (default 8)")
    p.add_argument("--copies", type=int, default=2, help="renderings of each training sentence (default 2)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N training sentences (smoke tests)")
    p.add_argument("--val-limit", type=int, default=300, help="validation sentences (default 300)")
    p.add_argument("--d-model", type=int, default=192, help="model width (default 192)")
    p.add_argument("--encoder-layers", type=int, default=6, help="SAN-M encoder layers (default 6)")
    p.add_argument("--decoder-layers", type=int, default=2, help="decoder layers (default 2)")
    p.add_argument("--grow", action="store_true",
                   help="resuming with more --encoder-layers/--decoder-layers than the checkpoint: add them on top "
                        "as identity layers (the model scores the same, then learns with the extra depth); the old "
                        "last.pt is kept as last-e<E>d<D>.pt")
    p.add_argument("--init-weights", metavar="FILE",
                   help="start a new run from these weights (an epochNN.pt, or the output of "
                        "`python -m tools.train_device`); --work-dir must already hold the tokens.model "
                        "and cmvn.npz they were trained with")
    p.add_argument("--ffn-dim", type=int, default=768, help="feed-forward width (default 768)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    p.add_argument("--vocab-size", type=int, default=1000, help="SentencePiece pieces (default 1000)")
    p.add_argument("--max-frames", type=int, default=1500, help="LFR frames (60 ms) per batch (default 1500)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    p.add_argument("--warmup-steps", type=int, default=1000,
                   help="linear warm-up steps, then 1/sqrt decay (default 1000)")
    p.add_argument("--ctc-weight", type=float, default=0.3, help="CTC auxiliary loss weight, 0 = off (default 0.3)")
    p.add_argument("--ctc-warmup-steps", type=int, default=4000,
                   help="encoder warm-up: the first N steps optimise CTC only (the CIF predictor learns to count "
                        "on a stopped-gradient encoder), without the decoder (default 4000)")
    p.add_argument("--predictor-weight", type=float, default=0.1,
                   help="weight of the CIF quantity loss |Σα − N| per utterance beside the per-token losses "
                        "(default 0.1; may change when resuming)")
    p.add_argument("--align-weight", type=float, default=1.0,
                   help="weight of the CIF alignment loss: the predictor learns to fire at each token's CTC spike "
                        "(needs --ctc-weight > 0; 0 = quantity loss only, as FunASR; default 1.0)")
    p.add_argument("--dropout", type=float, default=0.1, help="dropout (default 0.1; may change when resuming)")
    p.add_argument("--chunk-train-prob", type=float, default=0.25,
                   help="share of batches trained with a streaming chunk attention mask (default 0.25)")
    p.add_argument("--festival-share", type=float, default=0.15, help="share of festival voices (default 0.15)")
    p.add_argument("--no-spec-augment", dest="spec_augment", action="store_false", help="turn SpecAugment off")
    p.add_argument("--threads", type=int, default=2, help="torch threads per worker process (default 2)")
    p.add_argument("--processes", type=int, default=1,
                   help="data-parallel worker processes sharing out the batches (default 1); on a CPU, "
                        "2 processes × --threads 1 train faster than 1 × --threads 2")
    p.add_argument("--jobs", type=int, default=2, help="processes rendering the corpus (default 2)")
    p.add_argument("--seed", type=int, default=1, help="data order, voices, augmentation, init (default 1)")
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop (resumably) after N minutes of training")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.add_argument("--export", metavar="DIR", nargs="?", const=str(DEFAULT_EXPORT),
                   help="after training, average the last --average checkpoints and write the ONNX directory "
                        "to DIR (default: models/pretrained/paraformer-en)")
    p.add_argument("--average", type=int, default=3, help="checkpoints to average on export (default 3)")
    p.add_argument("--export-weights", metavar="FILE", nargs="+",
                   help="export the mean of these weight files (epochNN.pt, last.pt, train_device outputs) instead "
                        "of training; --work-dir must hold the tokens.model and cmvn.npz they were trained with")
    p.add_argument("--int8-only", action="store_true",
                   help="export only the int8 graphs (implied when exporting to the bundled default directory)")
    p.set_defaults(run=run_paraformer)


def run_paraformer(args: argparse.Namespace) -> int:
    mod = training_module("models.asr.paraformer.train")
    ParaformerTrainOptions, finalize, train = mod.ParaformerTrainOptions, mod.finalize, mod.train
    opts = ParaformerTrainOptions(
        work_dir=Path(args.work_dir), epochs=args.epochs, copies=args.copies, limit=args.limit,
        val_limit=args.val_limit, d_model=args.d_model, encoder_layers=args.encoder_layers,
        decoder_layers=args.decoder_layers, ffn_dim=args.ffn_dim, heads=args.heads, vocab_size=args.vocab_size,
        max_frames=args.max_frames, lr=args.lr, warmup_steps=args.warmup_steps, ctc_weight=args.ctc_weight,
        chunk_train_prob=args.chunk_train_prob, predictor_weight=args.predictor_weight, dropout=args.dropout,
        align_weight=args.align_weight,
        festival_share=args.festival_share,
        spec_augment=args.spec_augment, threads=args.threads, processes=args.processes, jobs=args.jobs, seed=args.seed,
        max_minutes=args.max_minutes, progress=args.progress, ctc_warmup_steps=args.ctc_warmup_steps, grow=args.grow,
    )
    if args.d_model % args.heads:
        raise UserError(f"--d-model {args.d_model} is not divisible by --heads {args.heads}")
    if args.data_dir:
        opts.data_dir = Path(args.data_dir)
    if args.init_weights:
        opts.init_weights = Path(args.init_weights)
    weights = [Path(w) for w in args.export_weights or []]
    for w in weights:
        if not w.is_file():
            raise UserError(f"--export-weights: {w} does not exist")
    if weights and not args.export:
        args.export = str(DEFAULT_EXPORT)
    try:
        work = opts.work_dir if weights else train(opts)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    if args.export:
        try:
            int8_only = args.int8_only or Path(args.export).resolve() == DEFAULT_EXPORT.resolve()
            out = finalize(work, Path(args.export), average_last=args.average, int8_only=int8_only,
                           weights=weights or None)
        except (FileNotFoundError, ValueError) as e:
            raise UserError(str(e)) from None
        print(f"wrote {out}")
    return 0
