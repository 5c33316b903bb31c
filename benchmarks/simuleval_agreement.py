"""Does ``simulsub score --json`` agree with SimulEval? Both score the same instances logs; the gap must be ≤ 1e-6.

SimulEval 1.1.4 pins old tqdm/bitarray releases, so it lives in its own virtualenv (``--setup`` makes it:
``python3 -m venv work/simuleval-venv`` + ``pip install simuleval==1.1.4``). Its scorers are called through its
Python API at full precision (its CLI rounds to 3 decimals): ``LogInstance`` per log line, then ``ALScorer``,
``LAALScorer``, ``DALScorer``, ``APScorer`` (plain and ``computation_aware``) and ``SacreBLEUScorer``.

Logs scored: text replays of the first ``--sentences`` test_2016_flickr sentences by every policy with a bundled
model (delays in source words), and a speech replay of ``recordings/longform/talk{1,2}.flac`` (delays in ms).

    .venv/bin/python -m benchmarks.simuleval_agreement --setup
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from app.profiles import REPO_ROOT

logger = logging.getLogger(__name__)

SIMULEVAL_VERSION = "1.1.4"
METRICS = ("AL", "LAAL", "DAL", "AP", "AL_CA", "LAAL_CA", "DAL_CA", "AP_CA", "BLEU")
TOLERANCE = 1e-6

SIMULEVAL_SCRIPT = r"""
import json, sys
from simuleval.evaluator.instance import LogInstance
from simuleval.evaluator.scorers.latency_scorer import ALScorer, APScorer, DALScorer, LAALScorer
from simuleval.evaluator.scorers.quality_scorer import SacreBLEUScorer

def load(path):
    with open(path, encoding="utf-8") as f:
        return {i: LogInstance(line) for i, line in enumerate(x for x in f if x.strip())}

out = {}
for path in sys.argv[1:]:
    scores = {}
    for name, cls in (("AL", ALScorer), ("LAAL", LAALScorer), ("DAL", DALScorer), ("AP", APScorer)):
        scores[name] = cls()(load(path))
        scores[name + "_CA"] = cls(computation_aware=True)(load(path))
    scores["BLEU"] = SacreBLEUScorer()(load(path))
    out[path] = scores
print(json.dumps(out))
"""


def setup_venv(venv: Path) -> None:
    """Create ``venv`` with SimulEval (PyPI) unless it is there."""
    if (venv / "bin" / "python").is_file():
        return
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"simuleval=={SIMULEVAL_VERSION}"], check=True)


def text_logs(out: Path, sentences: int) -> list[tuple[str, Path]]:
    """Instances logs of every bundled policy on the first ``sentences`` test sentences."""
    from app.policies import PolicyConfig, build_policy
    from models.text.data import multi30k_dir, read_lines
    from streaming.text_pipeline import TextPipelineOptions, replay_sentence

    data = multi30k_dir()
    src = read_lines(data / "test_2016_flickr.en")[:sentences]
    ref = read_lines(data / "test_2016_flickr.de")[:sentences]
    systems = {"reta beam 1 mask-k 2": PolicyConfig(name="reta", beam=1, mask_k=2),
               "fretna": PolicyConfig(name="fretna"), "waitk k=3": PolicyConfig(name="waitk", k=3),
               "llm medium": PolicyConfig(name="llm")}
    logs = []
    for label, cfg in systems.items():
        policy = build_policy(cfg)
        path = out / (label.replace(" ", "_").replace("=", "") + ".jsonl")
        with path.open("w", encoding="utf-8") as f:
            for i, (s, r) in enumerate(zip(src, ref, strict=True)):
                rec = replay_sentence(policy, s, index=i, reference=r,
                                      options=TextPipelineOptions(mask_k=cfg.mask_k))
                f.write(json.dumps(rec.to_json(), ensure_ascii=False) + "\n")
        logs.append((label, path))
    return logs


def speech_log(out: Path) -> tuple[str, Path]:
    """The instances log of a long-form speech replay (delays in ms)."""
    path = out / "speech_longform.jsonl"
    rec = REPO_ROOT / "recordings"
    subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "simulsub"), "replay", str(rec / "longform" / "talk1.flac"),
                    str(rec / "longform" / "talk2.flac"),
                    "--transcript-file", str(rec / "longform.en"), "--reference-file", str(rec / "longform.de"),
                    "--sentence-times", str(rec / "longform.times.jsonl"), "--policy", "reta", "--mask-k", "2",
                    "--log", str(path)], check=True, capture_output=True)
    return "speech reta mask-k 2 (longform talk1+2)", path


def ours(path: Path, source_type: str) -> dict[str, float]:
    """``simulsub score --json`` (the CLI itself), last line."""
    run = subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "simulsub"), "score", str(path), "--json",
                          "--source-type", source_type], check=True, capture_output=True, text=True)
    scores: dict[str, float] = json.loads(run.stdout.strip().splitlines()[-1])
    return scores


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="simulsub score --json vs SimulEval on the same instances logs")
    ap.add_argument("--venv", type=Path, default=REPO_ROOT / "work" / "simuleval-venv")
    ap.add_argument("--setup", action="store_true", help="create the SimulEval virtualenv when missing")
    ap.add_argument("--sentences", type=int, default=200)
    ap.add_argument("--results", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.setup:
        setup_venv(args.venv)
    if not (args.venv / "bin" / "python").is_file():
        print(f"no SimulEval virtualenv at {args.venv}: run with --setup", file=sys.stderr)
        return 2
    work = REPO_ROOT / "work" / "simuleval-agreement"
    work.mkdir(parents=True, exist_ok=True)
    logs = [(label, path, "text") for label, path in text_logs(work, args.sentences)]
    logs.append((*speech_log(work), "speech"))
    theirs = json.loads(subprocess.run([str(args.venv / "bin" / "python"), "-c", SIMULEVAL_SCRIPT,
                                        *[str(p) for _, p, _ in logs]],
                                       check=True, capture_output=True, text=True).stdout)
    rows: list[dict[str, Any]] = []
    for label, path, kind in logs:
        mine, ref = ours(path, kind), theirs[str(path)]
        gaps = {m: abs(float(mine[m]) - float(ref[m])) for m in METRICS}
        rows.append({"log": label, "instances": int(mine["n"]), "ours": {m: mine[m] for m in METRICS},
                     "simuleval": {m: ref[m] for m in METRICS}, "max_gap": max(gaps.values()),
                     "worst": max(gaps, key=lambda m: gaps[m])})
    worst = max(r["max_gap"] for r in rows)
    result = {"simuleval": SIMULEVAL_VERSION, "tolerance": TOLERANCE, "max_gap": worst, "agree": worst <= TOLERANCE,
              "logs": rows}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "simuleval_agreement.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = [f"# `simulsub score --json` vs SimulEval {SIMULEVAL_VERSION}", "",
             "`python -m benchmarks.simuleval_agreement --setup`: the same instances logs scored by both (SimulEval "
             "through its Python API at full precision).", "",
             "| log | instances | " + " | ".join(METRICS) + " | largest gap |",
             "|---|---:|" + "---:|" * len(METRICS) + "---:|"]
    for r in rows:
        gap = f"{r['max_gap']:.1e}" + (f" ({r['worst']})" if r["max_gap"] else "")
        lines.append(f"| {r['log']} | {r['instances']} | " + " | ".join(f"{r['ours'][m]:.6f}" for m in METRICS)
                     + f" | {gap} |")
    lines += ["", f"Largest gap over every metric and log: **{worst:.1e}** (tolerance {TOLERANCE:g}): "
              + ("agree." if worst <= TOLERANCE else "DISAGREE.")]
    (args.results / "simuleval_agreement.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    raise SystemExit(main())
