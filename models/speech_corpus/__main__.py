"""``python -m models.speech_corpus TEXT --out DIR``: render a text file (one utterance per line) to speech.

Example: held-out voices for testing, as WAV files plus ``text.txt`` / ``wavs.txt``::

    python -m models.speech_corpus ../shared/data/multi30k/test_2016_flickr.en --out work/asr-test/heldout \\
        --split heldout --clean --seed 7 --wavs
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from models.speech_corpus.corpus import CorpusOptions, build_corpus
from models.speech_corpus.voices import VoicePlan


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.speech_corpus", description=__doc__.splitlines()[0])
    p.add_argument("text", type=Path, help="UTF-8 text file, one utterance per line")
    p.add_argument("--out", type=Path, required=True, help="corpus directory (features, and wavs with --wavs)")
    p.add_argument("--seed", type=int, default=1, help="fixes voices, prosody, noise (default 1)")
    p.add_argument("--copies", type=int, default=1, help="renderings per line, each with another voice (default 1)")
    p.add_argument("--limit", type=int, default=0, help="first N lines only")
    p.add_argument("--split", choices=("train", "heldout", "any"), default="train",
                   help="espeak voice pairs to draw from: training ones, held-out ones, or all")
    p.add_argument("--clean", action="store_true", help="no noise, no tempo change, no festival voices")
    p.add_argument("--festival-share", type=float, default=0.15, help="share of festival voices (default 0.15)")
    p.add_argument("--wavs", action="store_true", help="also write 16 kHz WAV files, text.txt and wavs.txt")
    p.add_argument("--jobs", type=int, default=1, help="rendering processes (default 1)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    plan = VoicePlan.clean(args.split) if args.clean else VoicePlan(split=args.split,
                                                                    festival_share=args.festival_share)
    try:
        out = build_corpus(CorpusOptions(args.text, args.out, seed=args.seed, copies=args.copies, limit=args.limit,
                                         plan=plan, jobs=args.jobs, write_wavs=args.wavs))
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
