"""FReTNA vs ReTA (and wait-k) on a text test set fed word by word, in one process on one thread.

    .venv/bin/python -m benchmarks.fretna_vs_reta [--limit N] [--repeats 2] [--waitk 1,3,5,7,9]
        [--waitk-offline 3] [--out benchmarks/results/fretna_vs_reta]

Every system replays the same sentences with the same clock; systems run one after another, and with
``--repeats R`` the whole sequence runs R times in alternating order and each system keeps its lowest
compute per sentence (quality is deterministic and taken from the first pass), so background noise on a shared
machine inflates no system more than another. Also measured: full-sentence BLEU of the NAT in one pass and of
the AR teacher (beam 4), and a per-call profile of the NAT (``benchmarks.nat_profile``).
Writes ``OUT.json``, ``OUT.md`` (tables with the compute ratios) and ``OUT.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from app.policies import PolicyConfig, build_policy
from app.profiles import DEFAULT_MT_MODEL, DEFAULT_NAT_MODEL, DEFAULT_WAITK_MODEL, load_translator
from benchmarks.nat_profile import GROUPS, prefixes, profile
from models.nat.runtime import NatTranslator
from models.text.data import multi30k_dir, read_lines
from streaming.instance import InstanceRecord, score_instances
from streaming.metrics.quality import corpus_bleu
from streaming.text_pipeline import TextPipelineOptions, replay_sentence

COLUMNS = ("BLEU", "AL", "LAAL", "LAAL_CA", "NE", "compute_ms_per_sentence", "compute_ms_per_update")


@dataclass(frozen=True)
class System:
    """One row of the benchmark: a label and the policy it builds."""

    label: str
    config: PolicyConfig


def default_systems(nat: Path, mt: Path, mask_k: int, waitk: list[int], waitk_model: Path,
                    waitk_offline: list[int]) -> list[System]:
    systems = [
        System("reta beam 4", PolicyConfig(name="reta", model=mt, beam=4, mask_k=mask_k)),
        System("reta beam 1", PolicyConfig(name="reta", model=mt, beam=1, mask_k=mask_k)),
        System("fretna", PolicyConfig(name="fretna", model=nat, mask_k=mask_k)),
        System("fretna, no shortlist", PolicyConfig(name="fretna", model=nat, mask_k=mask_k, shortlist=False)),
    ]
    systems += [System(f"waitk k={k}", PolicyConfig(name="waitk", model=waitk_model, k=k)) for k in waitk]
    systems += [System(f"waitk test-time (AR model) k={k}", PolicyConfig(name="waitk", model=mt, beam=1, k=k))
                for k in waitk_offline]
    return systems


def replay(system: System, sources: list[str], refs: list[str]) -> dict[str, float]:
    policy = build_policy(system.config)
    opts = TextPipelineOptions(mask_k=system.config.mask_k)
    records: list[InstanceRecord] = [
        replay_sentence(policy, s, index=i, reference=r, options=opts)
        for i, (s, r) in enumerate(tqdm(list(zip(sources, refs, strict=True)), desc=system.label, unit="sent"))
    ]
    return score_instances(records)


def full_sentence_bleu(nat: Path, mt: Path, sources: list[str], refs: list[str]) -> dict[str, float]:
    """One-pass NAT BLEU (with and without shortlist) and AR beam-4 BLEU on whole sentences, with ms/sentence."""
    out: dict[str, float] = {}
    for label, tr in (("nat", NatTranslator(nat, threads=1)),
                      ("nat_no_shortlist", NatTranslator(nat, threads=1, use_shortlist=False))):
        t0 = time.perf_counter()
        hyps = [tr.translate_sentence(s) for s in sources]
        out[f"{label}_ms_per_sentence"] = (time.perf_counter() - t0) / len(sources) * 1e3
        out[f"{label}_BLEU"] = corpus_bleu(hyps, refs)
    ar = load_translator(mt, threads=1)
    t0 = time.perf_counter()
    hyps = [ar.translate_sentence(s, beam_size=4) for s in sources]
    out["ar_beam4_ms_per_sentence"] = (time.perf_counter() - t0) / len(sources) * 1e3
    out["ar_beam4_BLEU"] = corpus_bleu(hyps, refs)
    return out


def fmt(v: object) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def write_markdown(result: dict[str, object], path: Path) -> None:
    meta = result["meta"]
    rows = result["rows"]
    assert isinstance(meta, dict) and isinstance(rows, list)
    lines = [f"# FReTNA vs ReTA on {meta['split']} ({meta['n']} sentences fed word by word)", "",
             f"Command: `{meta['command']}`  ", f"Machine: {meta['machine']}, one thread, one process; "
             f"compute = lowest of {meta['repeats']} alternating passes. Latency in source words; "
             f"*_CA at {meta['word_ms']:.0f} ms/word.", "",
             "| system | " + " | ".join(COLUMNS) + " | compute vs fretna |", "|---|" + "---:|" * (len(COLUMNS) + 1)]
    for r in rows:
        lines.append(f"| {r['system']} | " + " | ".join(fmt(r.get(c, "–")) for c in COLUMNS)
                     + f" | {r['ratio_to_fretna']:.2f}× |")
    cost = {str(r["system"]): float(r["compute_ms_per_sentence"]) for r in rows}
    pairs = [("reta beam 4", "fretna"), ("reta beam 1", "fretna")]
    pairs += [(w, "fretna") for w in cost if w.startswith("waitk")]
    pairs += [("reta beam 4", w) for w in cost if w.startswith("waitk")]
    lines += ["", "Compute ratios (per sentence, same run): "
              + "; ".join(f"{a} / {b} = **{cost[a] / cost[b]:.2f}×**" for a, b in pairs if a in cost and b in cost)]
    full = result["full_sentence"]
    assert isinstance(full, dict)
    lines += ["", "Full sentences (no streaming), BLEU and ms per sentence:", "",
              "| model | BLEU | ms/sentence |", "|---|---:|---:|",
              f"| AR teacher, CTranslate2 int8, beam 4 | {full['ar_beam4_BLEU']:.2f} | "
              f"{full['ar_beam4_ms_per_sentence']:.2f} |",
              f"| NAT one pass, ONNX int8, shortlist | {full['nat_BLEU']:.2f} | {full['nat_ms_per_sentence']:.2f} |",
              f"| NAT one pass, ONNX int8, all pieces | {full['nat_no_shortlist_BLEU']:.2f} | "
              f"{full['nat_no_shortlist_ms_per_sentence']:.2f} |"]
    prof = result["profile"]
    assert isinstance(prof, list)
    lines += ["", "Where one NAT call spends its time, over every word prefix of the first "
              f"{meta['profile_sentences']} sentences: % of the profiled session.run (onnxruntime profiler; "
              "overhead = outside any kernel), then µs per call unprofiled (run) and for the Python side of an "
              "update (tokenizer, shortlist, CTC collapse):",
              "",
              "| variant | " + " | ".join(f"{g} %" for g in GROUPS) + " | overhead % | run µs | python µs | nodes |",
              "|---|" + "---:|" * (len(GROUPS) + 4)]
    for p in prof:
        lines.append(f"| {p['variant']} | " + " | ".join(fmt(p[f'{g}_pct']) for g in GROUPS)
                     + f" | {fmt(p['overhead_pct'])} | {fmt(p['run_us'])} | {fmt(p['python_us'])} | {p['nodes']} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def plot(rows: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in rows:
        label = str(r["system"])
        axes[0].scatter(float(r["LAAL"]), float(r["BLEU"]), label=label)  # type: ignore[arg-type]
        axes[1].barh(label, float(r["compute_ms_per_sentence"]))  # type: ignore[arg-type]
    axes[0].set_xlabel("LAAL (source words)")
    axes[0].set_ylabel("BLEU")
    axes[0].grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel("compute per sentence (ms, one thread)")
    axes[1].invert_yaxis()
    fig.suptitle("Simultaneous en→de on Multi30k, text fed word by word")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="test_2016_flickr")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--nat-model", type=Path, default=DEFAULT_NAT_MODEL)
    ap.add_argument("--mt-model", type=Path, default=DEFAULT_MT_MODEL)
    ap.add_argument("--mask-k", type=int, default=0)
    ap.add_argument("--waitk", default="", help="comma-separated k values to add trained wait-k rows (e.g. 1,3,5,7,9)")
    ap.add_argument("--waitk-model", type=Path, default=DEFAULT_WAITK_MODEL)
    ap.add_argument("--waitk-offline", default="",
                    help="comma-separated k values to add test-time wait-k rows over the AR model")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--profile-sentences", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/fretna_vs_reta"))
    args = ap.parse_args()
    data = multi30k_dir()
    sources = read_lines(data / f"{args.split}.en")
    refs = read_lines(data / f"{args.split}.de")
    if args.limit:
        sources, refs = sources[: args.limit], refs[: args.limit]
    waitk = [int(k) for k in args.waitk.split(",") if k.strip()]
    offline = [int(k) for k in args.waitk_offline.split(",") if k.strip()]
    systems = default_systems(args.nat_model, args.mt_model, args.mask_k, waitk, args.waitk_model, offline)
    results: dict[str, dict[str, float]] = {}
    for rep in range(args.repeats):
        for system in systems if rep % 2 == 0 else systems[::-1]:
            scores = replay(system, sources, refs)
            if system.label not in results:
                results[system.label] = scores
            else:
                for key in ("compute_ms_per_sentence", "compute_ms_per_update"):
                    results[system.label][key] = min(results[system.label][key], scores[key])
    base = results["fretna"]["compute_ms_per_sentence"]
    rows = [{"system": s.label, **results[s.label],
             "ratio_to_fretna": results[s.label]["compute_ms_per_sentence"] / base} for s in systems]
    texts = prefixes(sources[: args.profile_sentences])
    prof = [{"variant": f"int8, {'shortlist' if sl else 'all pieces'}",
             **profile(args.nat_model, texts, quantized=True, shortlist=sl).as_row()} for sl in (True, False)]
    full = full_sentence_bleu(args.nat_model, args.mt_model, sources, refs)
    command = "python -m benchmarks.fretna_vs_reta" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in (("limit", args.limit), ("waitk", args.waitk),
                                                       ("waitk_offline", args.waitk_offline),
                                                       ("mask_k", args.mask_k)) if v)
    meta = {"split": args.split, "n": len(sources), "threads": 1, "repeats": args.repeats, "word_ms": 400.0,
            "profile_sentences": args.profile_sentences,
            "machine": f"{platform.machine()} {platform.processor()}".strip(), "command": command}
    result: dict[str, object] = {"meta": meta, "rows": rows, "full_sentence": full, "profile": prof}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    write_markdown(result, args.out.with_suffix(".md"))
    plot(rows, args.out.with_suffix(".png"))
    print(args.out.with_suffix(".md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
