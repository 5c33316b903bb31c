"""``simulsub translate``: sentences on stdin, translations on stdout, one per line, in order."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.devices import add_device_argument, onnx_providers, resolve_device
from app.errors import UserError, check_range
from app.profiles import load_translator, resolve_model_dir
from app.run_profiles import add_profile_arguments
from app.speech_session import MAX_BEAM
from app.textio import read_stdin_sentences


def add_parser(sub: Any) -> None:
    p = sub.add_parser("translate", help="translate sentences from stdin (one per line) to stdout")
    p.add_argument("--model", metavar="DIR", help="CTranslate2 model directory with source.spm/target.spm "
                   "(default: the bundled en→de model; a converted OPUS-MT works too), or a NAT directory "
                   "(models/pretrained/nat-en-de: one parallel pass per sentence, --beam ignored)")
    p.add_argument("--beam", type=int, default=4, help="beam size (default 4)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for CTranslate2 (default 1)")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per batch (default 32)")
    add_profile_arguments(p)
    add_device_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_range("--beam", args.beam, 1, MAX_BEAM)
    check_range("--batch-size", args.batch_size, 1, 4096)
    check_range("--threads", args.threads, 1, 256)
    from models.marian.runtime import DecodeOptions, SourceTooLongError

    device = resolve_device(args.compute_device)
    model = resolve_model_dir(args.model) if args.model else None  # a directory or an installed model's name
    if model is not None and _is_nat_dir(model):
        return _translate_nat(model, _stdin_lines(), args.threads, device)
    translator = load_translator(model, threads=args.threads, device=device, source_lang=args.source_lang,
                                 target_lang=args.target_lang)  # a model that cannot load fails before stdin is read
    lines = _stdin_lines()
    opts = DecodeOptions(beam_size=args.beam)
    for start in range(0, len(lines), args.batch_size):
        batch = lines[start : start + args.batch_size]
        try:
            outputs = translator.translate(batch, opts)
        except SourceTooLongError as e:
            line = start + 1 + _first_too_long(translator, batch)
            raise UserError(f"stdin: line {line}: {e}") from None
        sys.stdout.write("".join(o + "\n" for o in outputs))
        sys.stdout.flush()
    return 0


def _stdin_lines() -> list[str]:
    lines = read_stdin_sentences()
    if not lines:
        raise UserError("stdin is empty: pipe one sentence per line")
    return lines


def _is_nat_dir(path: Path) -> bool:
    cfg = path / "config.json"
    try:
        return cfg.is_file() and json.loads(cfg.read_text(encoding="utf-8")).get("format") == "simulsub-nat-ctc"
    except ValueError:
        return False


def _translate_nat(path: Path, lines: list[str], threads: int, device: str) -> int:
    from models.marian.runtime import SourceTooLongError
    from models.nat.runtime import ModelDirError, NatTranslator

    try:
        nat = NatTranslator(path, threads=threads, providers=onnx_providers(device))
    except ModelDirError as e:
        raise UserError(str(e)) from None
    for n, line in enumerate(lines, 1):
        try:
            sys.stdout.write(nat.translate_sentence(line) + "\n")
        except SourceTooLongError as e:
            raise UserError(f"stdin: line {n}: {e}") from None
    sys.stdout.flush()
    return 0


def _first_too_long(translator: Any, batch: list[str]) -> int:
    from models.marian.runtime import SourceTooLongError

    for i, s in enumerate(batch):
        try:
            translator.encode_source(s)
        except SourceTooLongError:
            return i
    return 0
