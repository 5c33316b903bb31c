"""``simulsub train``: train the default models (needs the ``[train]`` extra: torch, transformers)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.commands import train_paraformer, train_wparaformer
from app.commands.training import training_module
from app.devices import add_device_argument, resolve_device
from app.errors import UserError
from app.profiles import DEFAULT_LLM_MODEL, DEFAULT_MT_MODEL


def add_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a model family (resumable; checkpoints outside git)")
    fam = p.add_subparsers(dest="family", required=True, metavar="FAMILY")
    m = fam.add_parser("marian", help="the autoregressive en→de Transformer (Multi30k)")
    m.add_argument("--work-dir", default="work/marian-en-de", help="checkpoints and logs (default work/marian-en-de)")
    m.add_argument("--data-dir", help="Multi30k folder (default ../shared/data/multi30k or $SIMULSUB_MULTI30K)")
    m.add_argument("--epochs", type=int, default=13, help="epochs to train in total (default 13)")
    m.add_argument("--limit", type=int, default=0, help="use only the first N training pairs (smoke tests)")
    m.add_argument("--vocab-size", type=int, default=8000, help="joint SentencePiece pieces (default 8000)")
    m.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    m.add_argument("--export", metavar="DIR", nargs="?", const=str(DEFAULT_MT_MODEL),
                   help="after training, average the last --average checkpoints and write the CTranslate2 "
                        "int8 model to DIR (default: models/pretrained/marian-en-de)")
    m.add_argument("--average", type=int, default=5, help="checkpoints to average on export (default 5)")
    m.set_defaults(run=run_marian)
    train_paraformer.add_family(fam)
    train_wparaformer.add_family(fam)
    n = fam.add_parser("nat", help="the FReTNA non-autoregressive en→de model on distilled data (simulsub distill)")
    n.add_argument("--distill-file", default="work/distill/distill.jsonl", help="output of `simulsub distill`")
    n.add_argument("--work-dir", default="work/nat-en-de", help="checkpoints and logs (default work/nat-en-de)")
    n.add_argument("--epochs", type=int, default=6, help="epochs to train in total (default 6)")
    n.add_argument("--init-from", default="work/marian-en-de", metavar="DIR",
                   help="AR (simulsub train marian) or NAT (simulsub train nat) work directory whose averaged "
                        "checkpoints initialise the NAT (default work/marian-en-de); '' starts from random weights")
    n.add_argument("--encoder-layers", type=int, default=3,
                   help="NAT encoder layers (default 3); fewer than the initialising model's takes evenly spaced "
                        "layers of it")
    n.add_argument("--decoder-layers", type=int, default=3, help="NAT decoder layers (default 3), as above")
    n.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    n.add_argument("--export", metavar="DIR", nargs="?", const=str(DEFAULT_MT_MODEL.parent / "nat-en-de"),
                   help="after training, average the last --average checkpoints and write the ONNX model "
                        "(fp32 + int8) to DIR (default: models/pretrained/nat-en-de)")
    n.add_argument("--average", type=int, default=3, help="checkpoints to average on export (default 3)")
    n.set_defaults(run=run_nat)
    w = fam.add_parser("waitk", help="the wait-k en→de model (unidirectional encoder, k sampled per batch) on "
                                     "distilled data (simulsub distill)")
    w.add_argument("--distill-file", default="work/distill/distill.jsonl", help="output of `simulsub distill`")
    w.add_argument("--work-dir", default="work/waitk-en-de", help="checkpoints and logs (default work/waitk-en-de)")
    w.add_argument("--epochs", type=int, default=5, help="epochs to train in total (default 5)")
    w.add_argument("--init-from", default="work/marian-en-de", metavar="DIR",
                   help="AR (simulsub train marian) work directory whose averaged checkpoints initialise the model "
                        "(default work/marian-en-de); '' starts from random weights")
    w.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    w.add_argument("--export", metavar="DIR", nargs="?", const=str(DEFAULT_MT_MODEL.parent / "waitk-en-de"),
                   help="after training, average the last --average checkpoints and write the ONNX step graphs "
                        "(fp32 + int8) to DIR (default: models/pretrained/waitk-en-de)")
    w.add_argument("--average", type=int, default=3, help="checkpoints to average on export (default 3)")
    w.set_defaults(run=run_waitk)
    e = fam.add_parser("llm-simt", help="a causal LM that interleaves reading and writing (EAST-style) on distilled "
                                        "data (simulsub distill); the default small model or any local HF model")
    e.add_argument("--distill-file", default="work/distill/distill.jsonl", help="output of `simulsub distill`")
    e.add_argument("--work-dir", default="work/llm-en-de", help="checkpoints and logs (default work/llm-en-de)")
    e.add_argument("--epochs", type=int, default=6, help="epochs to train in total (default 6)")
    e.add_argument("--init-from", default="work/marian-en-de", metavar="DIR",
                   help="AR work directory that initialises the default model (default work/marian-en-de)")
    e.add_argument("--base", metavar="DIR", default="",
                   help="fine-tune this Hugging Face causal-LM directory (a Qwen, a Llama) instead of the default "
                        "model; the control tokens are added to its tokenizer")
    e.add_argument("--limit", type=int, default=0, help="use only the first N sentences (smoke tests)")
    e.add_argument("--threads", type=int, default=2, help="torch threads on the CPU (default 2)")
    add_device_argument(e)
    e.add_argument("--export", metavar="DIR", nargs="?", const=str(DEFAULT_LLM_MODEL),
                   help="after training, average the last --average checkpoints and write the Hugging Face "
                        "directory (bfloat16) to DIR (default: models/pretrained/llm-en-de)")
    e.add_argument("--average", type=int, default=2, help="checkpoints to average on export (default 2)")
    e.set_defaults(run=run_llm)


def run_marian(args: argparse.Namespace) -> int:
    mod = training_module("models.marian.train")
    MarianTrainOptions, finalize, train = mod.MarianTrainOptions, mod.finalize, mod.train
    opts = MarianTrainOptions(work_dir=Path(args.work_dir), epochs=args.epochs, limit=args.limit,
                              vocab_size=args.vocab_size, threads=args.threads)
    if args.data_dir:
        opts.data_dir = Path(args.data_dir)
    try:
        work = train(opts)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    if args.export:
        out = finalize(work, Path(args.export), average_last=args.average)
        print(f"wrote {out}")
    return 0


def run_nat(args: argparse.Namespace) -> int:
    mod = training_module("models.nat.train")
    NatTrainOptions, finalize, train = mod.NatTrainOptions, mod.finalize, mod.train
    opts = NatTrainOptions(distill_file=Path(args.distill_file), work_dir=Path(args.work_dir), epochs=args.epochs,
                           init_from=args.init_from, threads=args.threads, encoder_layers=args.encoder_layers,
                           decoder_layers=args.decoder_layers)
    if not opts.distill_file.is_file():
        raise UserError(f"{opts.distill_file} does not exist: run `simulsub distill` first")
    return _train_and_export(train, opts, args.export,
                             lambda work: finalize(work, Path(args.export), opts.spm_model, average_last=args.average))


def run_waitk(args: argparse.Namespace) -> int:
    mod = training_module("models.waitk.train")
    WaitkTrainOptions, finalize, train = mod.WaitkTrainOptions, mod.finalize, mod.train
    opts = WaitkTrainOptions(distill_file=Path(args.distill_file), work_dir=Path(args.work_dir), epochs=args.epochs,
                             init_from=args.init_from, threads=args.threads)
    return _train_and_export(train, opts, args.export,
                             lambda work: finalize(work, Path(args.export), opts.spm_model, average_last=args.average))


def run_llm(args: argparse.Namespace) -> int:
    mod = training_module("models.llm.train")
    LlmTrainOptions, finalize, train = mod.LlmTrainOptions, mod.finalize, mod.train
    from models.llm.build import BaseModelError

    opts = LlmTrainOptions(distill_file=Path(args.distill_file), work_dir=Path(args.work_dir), epochs=args.epochs,
                           init_from=args.init_from, base=args.base, limit=args.limit, threads=args.threads,
                           device=resolve_device(args.compute_device))
    return _train_and_export(train, opts, args.export,
                             lambda work: finalize(work, Path(args.export), average_last=args.average),
                             errors=(FileNotFoundError, BaseModelError))


def _train_and_export(train: Callable[[Any], Path], opts: Any, export: str | None, finalize: Callable[[Path], Path],
                      *, errors: tuple[type[Exception], ...] = (FileNotFoundError, ValueError)) -> int:
    """Train (or resume) with ``opts``; with ``--export``, write the runtime model; known failures become
    one-line errors."""
    try:
        work = train(opts)
    except errors as e:
        raise UserError(str(e)) from None
    if export:
        print(f"wrote {finalize(work)}")
    return 0
