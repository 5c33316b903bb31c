"""``simulsub export``: every trained model to ONNX fp32 / int8 / fp16 and CTranslate2 int8 / float16, validated.

The families and what each runs come from :mod:`models.export_registry`. Needs the ``[train]`` extra (the
sources are PyTorch checkpoints in the training work directories).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from app.commands.training import training_module
from app.errors import UserError
from models.export_registry import checked_families, exporter_families, get_exporter

logger = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    checked = ",".join(checked_families())
    p = sub.add_parser("export", help="export the trained models to every runtime format and check each against "
                                      "its source model")
    p.add_argument("--families", default=checked,
                   help=f"comma-separated model families (default: all of {checked})")
    p.add_argument("--out", default="work/export", metavar="DIR", help="output folder (default work/export)")
    p.add_argument("--work-root", default="work", metavar="DIR",
                   help="folder holding the training work directories (default work)")
    p.add_argument("--sentences", type=int, default=50,
                   help="validation sentences / utterances per exported variant (default 50)")
    p.add_argument("--data-dir", help="Multi30k folder (default ../shared/data/multi30k or $SIMULSUB_MULTI30K)")
    p.set_defaults(run=run)


def selected_families(spec: str) -> tuple[str, ...]:
    """The families of ``--families``, each one the registry can export and check; :class:`UserError` otherwise."""
    families = tuple(f.strip() for f in spec.split(",") if f.strip())
    checked = checked_families()
    unknown = [f for f in families if f not in exporter_families()]
    if unknown or not families:
        raise UserError(f"unknown model family {', '.join(unknown) or '(none)'}; choose from {', '.join(checked)}")
    for f in families:
        if f not in checked:
            raise UserError(f"{f} has no checked export here ({get_exporter(f).description}); "
                            f"choose from {', '.join(checked)}")
    return families


def run(args: argparse.Namespace) -> int:
    families = selected_families(args.families)
    mod = training_module("models.exports")
    if args.sentences < 1:
        raise UserError("--sentences must be >= 1")
    opts = mod.ExportOptions(out_dir=Path(args.out), work_root=Path(args.work_root), sentences=args.sentences)
    if args.data_dir:
        opts.data_dir = Path(args.data_dir)
    checks = []
    skipped = []
    for family in families:
        print(f"exporting {family} …", file=sys.stderr, flush=True)
        try:
            checks.extend(get_exporter(family).run_check(opts))
        except FileNotFoundError as e:
            skipped.append(f"{family}: {e}")
    if not checks:
        raise UserError("nothing exported: " + "; ".join(skipped))
    mod.write_report(checks, opts.out_dir)
    print(f"{'family':<11} {'variant':<8} {'identical':>9} {'BLEU vs source':>14} {'threshold':>9}  result  path")
    for c in checks:
        print(f"{c.family:<11} {c.variant:<8} {c.identical:>9.0%} {c.bleu_vs_source:>14.2f} {c.threshold:>9.1f}  "
              f"{'ok' if c.passed else 'FAILED':<6}  {c.path}")
    for s in skipped:
        print(f"skipped {s}")
    failed = [c for c in checks if not c.passed]
    if failed:
        print(f"{len(failed)} exported variant(s) differ from their source beyond the threshold", file=sys.stderr)
        return 1
    return 0
