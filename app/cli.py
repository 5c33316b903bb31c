"""The ``simulsub`` command line: one sub-command per module under :mod:`app.commands`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from app import __version__
from app.commands import (
    bench,
    client,
    distill,
    export,
    mic,
    replay,
    replay_text,
    score,
    serve,
    train,
    transcribe,
    translate,
    web,
)
from app.errors import UserError

COMMANDS = (translate, replay_text, replay, mic, serve, client, web, score, transcribe, train, distill, export, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simulsub", description="Simultaneous speech and text translation with revisable subtitles."
    )
    parser.add_argument("--version", action="version", version=f"simulsub {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code: int = args.run(args)
        return code
    except UserError as e:
        print(f"simulsub {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"simulsub {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
