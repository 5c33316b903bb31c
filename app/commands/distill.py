"""``simulsub distill``: the AR teacher's translations of training sentences and of all their prefixes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from app.errors import UserError
from app.profiles import resolve_mt_model


def add_parser(sub: Any) -> None:
    p = sub.add_parser("distill", help="sequence-level distillation data (full sentences + word prefixes)")
    p.add_argument("--model", metavar="DIR", help="teacher CTranslate2 model (default: bundled en→de)")
    p.add_argument("--source", metavar="F", help="source sentences (default: Multi30k train.en)")
    p.add_argument("--out", default="work/distill", help="output folder (default work/distill)")
    p.add_argument("--beam", type=int, default=4, help="teacher beam size (default 4)")
    p.add_argument("--threads", type=int, default=2, help="parallel batches (default 2)")
    p.add_argument("--limit", type=int, default=0, help="only the first N sentences")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from app.textio import read_sentences
    from models.marian.distill import DistillOptions, distill
    from models.text.data import multi30k_dir

    if args.beam < 1 or args.threads < 1:
        raise UserError("--beam and --threads must be >= 1")
    source = Path(args.source) if args.source else multi30k_dir() / "train.en"
    sources = read_sentences(source, what="source file")
    if args.limit:
        sources = sources[: args.limit]
    out = distill(resolve_mt_model(args.model), sources, Path(args.out),
                  DistillOptions(beam_size=args.beam, threads=args.threads))
    print(f"wrote {out}")
    return 0
