"""``simulsub bench``: every policy as text and as speech, and the ASR, back to back; writes BENCHMARKS.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app.devices import add_device_argument, resolve_device
from app.errors import UserError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmark every policy (text and speech) and the ASR on one machine; "
                                     "writes BENCHMARKS.md and plots")
    p.add_argument("--quick", action="store_true", help="100 sentences and 30 recordings, one pass (a few minutes)")
    p.add_argument("--out", metavar="FILE", help="report path (default: BENCHMARKS.md in the repository)")
    p.add_argument("--threads", type=int, default=1, help="threads per model (default 1)")
    p.add_argument("--text-limit", type=int, default=0, help="text sentences (default 1000, --quick 100)")
    p.add_argument("--speech-limit", type=int, default=0, help="recordings (default 1000, --quick 30)")
    add_device_argument(p)
    p.set_defaults(run=run)


def _import_suite() -> Any:
    """``benchmarks.suite`` from the source checkout: ``benchmarks/`` lives beside the code and is not installed."""
    try:
        import benchmarks.suite as suite
    except ModuleNotFoundError:
        root = Path(__file__).resolve().parents[2]
        if not (root / "benchmarks" / "suite.py").is_file():
            raise UserError("simulsub bench runs from a source checkout (benchmarks/ is not installed with the "
                            "package): clone the repository and run `make setup` there") from None
        sys.path.insert(0, str(root))
        import benchmarks.suite as suite
    return suite


def run(args: argparse.Namespace) -> int:
    suite = _import_suite()
    if args.threads < 1 or args.text_limit < 0 or args.speech_limit < 0:
        raise UserError("--threads must be >= 1 and the limits >= 0")
    opts = suite.BenchOptions(quick=args.quick, threads=args.threads, device=resolve_device(args.compute_device),
                              text_limit=args.text_limit, speech_limit=args.speech_limit)
    if args.out:
        opts.out = Path(args.out)
        opts.results_dir = opts.out.parent / f"{opts.out.stem}-results"
    result = suite.run_bench(opts)
    print(opts.out.read_text(encoding="utf-8"))
    if result["notes"]:
        print("\n".join(f"note: {n}" for n in result["notes"]))
    return 0
