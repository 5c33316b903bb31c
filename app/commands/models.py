"""``simulsub models list | pull NAME | import DIR | convert DIR OUT | remove NAME``: get and pick real models."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.errors import UserError
from app.model_store import (
    CATALOG,
    bundled,
    detect_format,
    import_model,
    installed,
    pull,
    remove_model,
    store_dir,
)

QUANTIZATIONS = ("int8", "int8_float16", "int16", "float16", "float32")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("models", help="list, pull, import and convert models (store: $SIMULSUB_MODELS, "
                                      "default ~/.cache/simulsub/models)")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    ls = verbs.add_parser("list", help="bundled, installed and pullable models")
    ls.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    pl = verbs.add_parser("pull", help="download a model (a catalog NAME, hf:ORG/REPO or modelscope:ORG/REPO) "
                                       "and install it")
    pl.add_argument("spec", metavar="NAME")
    pl.add_argument("--offline", action="store_true",
                    help="use only what is already downloaded in STORE/hub (also: $SIMULSUB_OFFLINE=1)")
    pl.add_argument("--revision", help="a branch, tag or commit of the repository")
    im = verbs.add_parser("import", help="install a model directory (converted to CTranslate2 where needed)")
    im.add_argument("directory", metavar="DIR")
    for q in (pl, im):
        q.add_argument("--name", help="the installed model's name (default: the catalog name / folder name)")
        q.add_argument("--quantization", choices=QUANTIZATIONS, default="int8",
                       help="CTranslate2 weights of converted models (default int8)")
        q.add_argument("--force", action="store_true", help="replace an installed model of the same name")
    cv = verbs.add_parser("convert", help="convert a Hugging Face translation/Whisper model to a CTranslate2 "
                                          "directory OUT (outside the store)")
    cv.add_argument("directory", metavar="DIR")
    cv.add_argument("out", metavar="OUT")
    cv.add_argument("--quantization", choices=QUANTIZATIONS, default="int8")
    cv.add_argument("--force", action="store_true", help="overwrite OUT")
    rm = verbs.add_parser("remove", help="delete an installed model")
    rm.add_argument("name", metavar="NAME")
    p.set_defaults(run=run)


def _quantization(value: str) -> str | None:
    return None if value == "float32" else value


def run(args: argparse.Namespace) -> int:
    import os

    if args.verb == "list":
        return _list(args.json)
    if args.verb == "pull":
        offline = args.offline or os.environ.get("SIMULSUB_OFFLINE", "") not in ("", "0")
        model = pull(args.spec, name=args.name, offline=offline, revision=args.revision,
                     quantization=_quantization(args.quantization), force=args.force,
                     on_downloaded=lambda p: print(f"downloaded: {p}", file=sys.stderr))
    elif args.verb == "import":
        model = import_model(Path(args.directory), args.name, quantization=_quantization(args.quantization),
                             force=args.force)
    elif args.verb == "convert":
        return _convert(Path(args.directory), Path(args.out), _quantization(args.quantization), args.force)
    else:
        print(f"removed {remove_model(args.name)}")
        return 0
    print(f"installed {model.name} ({model.role}, {model.format}) in {model.path}")
    flag = {"mt": "--model", "asr": "--asr-model", "llm": "--llm-model"}[model.role]
    print(f"use it: {flag} {model.name}")
    return 0


def _convert(src: Path, out: Path, quantization: str | None, force: bool) -> int:
    from app.model_store import convert_whisper
    from models.marian.convert import ConversionError, convert_hf_translation

    fmt, _ = detect_format(src)
    if out.exists() and not force:
        raise UserError(f"{out} exists: pass --force to overwrite it")
    if fmt == "hf-translation":
        try:
            convert_hf_translation(src, out, quantization=quantization, force=True)
        except ConversionError as e:
            raise UserError(str(e)) from None
    elif fmt == "hf-whisper":
        convert_whisper(src, out, quantization)
    else:
        raise UserError(f"{src} is {fmt}: nothing to convert (import it with: simulsub models import {src})")
    print(f"converted {src} → {out}")
    return 0


def _list(as_json: bool) -> int:
    mine = installed()
    rows = ([("bundled", m.name, m.role, m.format, str(m.path)) for m in bundled()]
            + [("installed", m.name, m.role, m.format, m.source) for m in mine])
    have = {m.name for m in mine}
    pullable = [e for e in CATALOG.values() if e.name not in have]
    if as_json:
        print(json.dumps({"store": str(store_dir()),
                          "models": [dict(zip(("where", "name", "role", "format", "source"), r, strict=True))
                                     for r in rows],
                          "pullable": [{"name": e.name, "repo": f"{e.hub}:{e.repo}", "role": e.role,
                                        "description": e.description} for e in pullable]}, ensure_ascii=False))
        return 0
    print(f"store: {store_dir()}")
    width = max([len(r[1]) for r in rows] + [len(e.name) for e in pullable] + [10])
    for where, name, role, fmt, src in rows:
        print(f"  {where:<9} {name:<{width}}  {role:<3}  {fmt:<18} {src}")
    if pullable:
        print("pullable (simulsub models pull NAME):")
        for e in pullable:
            print(f"  {e.name:<{width}}  {e.role:<3}  {e.hub}:{e.repo}  {e.description}")
    return 0
