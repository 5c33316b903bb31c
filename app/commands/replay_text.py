"""``simulsub replay-text``: stream source sentences word by word through a policy; log and score."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tqdm import tqdm

from app.devices import add_device_argument, resolve_device
from app.errors import UserError
from app.policies import LATENCY_LEVELS, build_policy, policy_config_from_args, policy_names
from app.report import json_ready, print_summary
from app.run_profiles import add_profile_arguments
from app.sinks import JsonlLog
from app.textio import read_sentences
from streaming.clock import DEFAULT_WORD_MS
from streaming.instance import InstanceRecord, score_instances
from streaming.policy import Policy
from streaming.text_pipeline import TextPipelineOptions, replay_sentence


def add_parser(sub: Any) -> None:
    p = sub.add_parser("replay-text", help="replay text sentences one source word per step through a policy")
    p.add_argument("--source", required=True, metavar="F", help="source sentences, one per line")
    p.add_argument("--reference", metavar="F", help="reference translations, one per line (enables BLEU/chrF)")
    p.add_argument("--policy", choices=policy_names(), default="reta", help="simultaneous policy (default reta)")
    p.add_argument("--model", metavar="DIR", help="translation model directory (default: bundled en→de)")
    p.add_argument("--beam", type=int, default=4, help="beam size (default 4)")
    p.add_argument("--k", type=int, default=3, help="waitk: source words read before the first target word (default 3)")
    p.add_argument("--latency", choices=LATENCY_LEVELS, default="medium",
                   help="llm: the latency the model is asked for (default medium)")
    p.add_argument("--llm-model", metavar="DIR",
                   help="llm: a Hugging Face causal-LM directory with <|end-of-read|>/<|end-of-write|> "
                        "(default models/pretrained/llm-en-de)")
    p.add_argument("--mask-k", type=int, default=0, help="hide the last K words of non-final outputs (default 0)")
    p.add_argument("--prefix-bias", choices=("off", "forced", "biased"), default="off",
                   help="reuse the previous output: forced = displayed words are kept, "
                        "biased = soft bias (default off)")
    p.add_argument("--prefix-beta", type=float, default=0.2,
                   help="bias strength for --prefix-bias biased, in (0, 1); 0.5 and above acts like forced "
                        "(default 0.2)")
    p.add_argument("--no-shortlist", action="store_true",
                   help="fretna: score every output piece instead of the model's lexical shortlist")
    p.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    add_profile_arguments(p)
    add_device_argument(p)
    p.add_argument("--word-ms", type=float, default=DEFAULT_WORD_MS,
                   help="nominal ms per source word to express compute in words for *_CA (default 400)")
    p.add_argument("--limit", type=int, default=0, help="replay only the first N sentences")
    p.add_argument("--log", metavar="OUT.jsonl", help="write the SimulEval-style instances log here")
    p.add_argument("--show", action="store_true", help="print every sentence's displayed revisions as it is replayed")
    p.add_argument("--json", action="store_true", help="print one JSON object with the scores as the last line")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    sources = read_sentences(args.source, what="source file")
    references: list[str | None] = [None] * len(sources)
    if args.reference:
        refs = read_sentences(args.reference, what="reference file", allow_empty_lines=True)
        if len(refs) != len(sources):
            raise UserError(f"{args.reference} has {len(refs)} lines but {args.source} has {len(sources)}")
        references = list(refs)
    if args.limit < 0:
        raise UserError("--limit must be >= 0")
    if args.limit:
        sources, references = sources[: args.limit], references[: args.limit]
    if args.word_ms <= 0:
        raise UserError("--word-ms must be positive")
    policy = build_policy(policy_config_from_args(args, device=resolve_device(args.compute_device)))
    options = TextPipelineOptions(mask_k=args.mask_k, word_ms=args.word_ms)
    log = JsonlLog.open(args.log) if args.log else None
    try:
        records = _replay(args, policy, sources, references, options, log)
    except BaseException as e:
        kept = log.abort() if log else None
        if isinstance(e, UserError) and kept is not None:
            raise UserError(f"{e} (the instances log so far is in {kept}; {args.log} was left as it was)") from None
        raise
    if log:
        log.commit()
    scores = score_instances(records)
    setting = f"k={args.k}" if args.policy == "waitk" else f"mask-k={args.mask_k} prefix={args.prefix_bias}"
    title = (f"{args.policy} beam={args.beam} {setting}: "
             f"{len(records)} sentences (AL/LAAL/DAL in source words; *_CA at {args.word_ms:g} ms/word)")
    print_summary(title, scores)
    if args.log:
        print(f"  log         {args.log}")
    if args.json:
        print(json.dumps(json_ready(scores)))
    return 0


def _replay(args: argparse.Namespace, policy: Policy, sources: list[str], references: list[str | None],
            options: TextPipelineOptions, log: JsonlLog | None) -> list[InstanceRecord]:
    """Every sentence through the text pipeline, word by word; each record logged as it is made."""
    from models.marian.runtime import SourceTooLongError

    records: list[InstanceRecord] = []
    pairs = list(zip(sources, references, strict=True))
    quiet = True if args.show else None  # None: a bar only on a terminal
    bar = tqdm(pairs, desc=f"replay {args.policy}", unit="sent", file=sys.stderr, disable=quiet)
    for index, (src, ref) in enumerate(bar):
        try:
            rec = replay_sentence(policy, src, index=index, reference=ref, options=options)
        except SourceTooLongError as e:
            raise UserError(f"{args.source}: line {index + 1}: {e}") from None
        records.append(rec)
        if args.show:
            _show(rec)
        if log is not None:
            log.write(rec.to_json())
    return records

def _show(rec: InstanceRecord) -> None:
    """Print one replayed sentence: the source, then each displayed revision (the last one is final)."""
    print(f"[{rec.index}] {rec.source}")
    for i, text in enumerate(rec.revisions or []):
        print(f"    {'=' if i == len(rec.revisions or []) - 1 else '~'} {text}")

