"""``simulsub score LOG.jsonl``: score a SimulEval-style instances log."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from app.errors import UserError
from app.report import json_ready, print_summary
from streaming.instance import InstanceRecord, LogFormatError, score_instances


def add_parser(sub: Any) -> None:
    p = sub.add_parser("score", help="score a SimulEval-style instances log (JSON lines)")
    p.add_argument("log", metavar="LOG.jsonl", help="one JSON object per line: prediction, delays, source_length, ...")
    p.add_argument("--source-type", choices=("text", "speech"), default="text",
                   help="delays in source words (text) or in ms (speech); default text")
    p.add_argument("--json", action="store_true", help="print one JSON object with the scores as the last line")
    p.set_defaults(run=run)


def read_log(path: Path) -> list[InstanceRecord]:
    """Parse an instances log; every problem names the line and what is wrong."""
    if not path.is_file():
        raise UserError(f"log {path} does not exist")
    records: list[InstanceRecord] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"log {path} is not UTF-8 text (byte {e.start}): expected JSON lines") from None
    except OSError as e:
        raise UserError(f"cannot read log {path}: {e.strerror or e}") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        except RecursionError:
            raise UserError(f"{path}:{lineno}: JSON nested too deeply") from None
        try:
            records.append(InstanceRecord.from_json(obj, default_index=len(records)))
        except LogFormatError as e:
            raise UserError(f"{path}:{lineno}: {e}") from None
    if not records:
        raise UserError(f"log {path} is empty")
    return records


def run(args: argparse.Namespace) -> int:
    records = read_log(Path(args.log))
    scores = score_instances(records)
    unit = "words" if args.source_type == "text" else "ms"
    print_summary(f"{args.log} ({len(records)} instances, latency in source {unit})", scores)
    if args.json:
        print(json.dumps(json_ready(scores)))
    return 0
