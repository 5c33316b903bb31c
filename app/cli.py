"""The ``simulsub`` command line: one sub-command per module under :mod:`app.commands`.

Any :class:`streaming.errors.SimulsubError` a command lets through (a :class:`app.errors.UserError`, or a library
error such as a model directory that cannot be loaded) becomes one line ``simulsub COMMAND: error: MESSAGE`` on
stderr and the error's ``exit_code`` (2), never a traceback.
"""

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
    models,
    replay,
    replay_text,
    score,
    serve,
    train,
    transcribe,
    translate,
    web,
)
from app.run_profiles import expand_profile
from streaming.errors import SimulsubError

COMMANDS = (translate, replay_text, replay, mic, serve, client, web, score, transcribe, models, train, distill, export,
            bench)


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


def command_flags(parser: argparse.ArgumentParser) -> dict[str, set[str]]:
    """Each command's option strings (for ``--profile``, which only sets the options a command has)."""
    out: dict[str, set[str]] = {}
    for action in parser._actions:  # argparse keeps its subcommands here; there is no public accessor
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[name] = {s for a in sub._actions for s in a.option_strings}
    return out


def configure_logging(verbose: bool) -> None:
    """Log records to stderr: DEBUG with ``--verbose``, else WARNING (every process of a command alike)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def one_line(error: BaseException) -> str:
    """``error``'s message on one line (its lines joined by "; "; the class name when it has no message)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``simulsub`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(expand_profile(argv, command_flags(parser)))
    configure_logging(args.verbose)
    try:
        code: int = args.run(args)
        return code
    except SimulsubError as e:
        print(f"simulsub {args.command}: error: {one_line(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"simulsub {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
