"""ReTA stabilisation grid on a text test set: BLEU, AL, LAAL, NE and compute for every combination of
beam ∈ {1, 4}, display mask-k ∈ {0, 2, 4} and prefix reuse ∈ {off, forced, biased}.

    .venv/bin/python -m benchmarks.reta_grid [--limit N] [--out benchmarks/results/reta_grid]

All configurations run in one process, one after another, on one thread, so compute ratios are comparable.
Writes ``OUT.json`` (all scores), ``OUT.md`` (table) and ``OUT.png`` (quality vs latency and flicker).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
from pathlib import Path

from tqdm import tqdm

from app.policies import PolicyConfig, build_policy
from models.text.data import multi30k_dir, read_lines
from streaming.instance import score_instances
from streaming.text_pipeline import TextPipelineOptions, replay_sentence

COLUMNS = ("BLEU", "AL", "LAAL", "AL_CA", "LAAL_CA", "NE", "compute_ms_per_sentence", "compute_ms_per_update")


def run_grid(sources: list[str], refs: list[str], model: Path | None, beams: list[int], masks: list[int],
             prefixes: list[str]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for beam, prefix, mask in itertools.product(beams, prefixes, masks):
        policy = build_policy(PolicyConfig(model=model, beam=beam, mask_k=mask, prefix_bias=prefix, threads=1))
        opts = TextPipelineOptions(mask_k=mask)
        records = [replay_sentence(policy, s, index=i, reference=r, options=opts)
                   for i, (s, r) in enumerate(tqdm(list(zip(sources, refs, strict=True)),
                                                   desc=f"beam={beam} prefix={prefix} mask-k={mask}", unit="sent"))]
        rows.append({"beam": beam, "prefix": prefix, "mask_k": mask, **score_instances(records)})
    return rows


def write_table(rows: list[dict[str, object]], path: Path, header: str) -> None:
    lines = [header, "", "| beam | prefix | mask-k | " + " | ".join(COLUMNS) + " |",
             "|---:|---|---:|" + "---:|" * len(COLUMNS)]
    for r in rows:
        vals = " | ".join(f"{float(r[c]):.2f}" if c in r else "–" for c in COLUMNS)  # type: ignore[arg-type]
        lines.append(f"| {r['beam']} | {r['prefix']} | {r['mask_k']} | {vals} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def plot(rows: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    markers = {"off": "o", "forced": "s", "biased": "^"}
    for r in rows:
        colour = "tab:blue" if r["beam"] == 1 else "tab:red"
        m = markers[str(r["prefix"])]
        label = f"beam {r['beam']}, prefix {r['prefix']}"
        axes[0].scatter(r["LAAL"], r["BLEU"], c=colour, marker=m, label=label)
        axes[0].annotate(f"k={r['mask_k']}", (r["LAAL"], r["BLEU"]), fontsize=7,
                         xytext=(3, 3), textcoords="offset points")
        axes[1].scatter(r["NE"], r["BLEU"], c=colour, marker=m, label=label)
    axes[0].set_xlabel("LAAL (source words)")
    axes[1].set_xlabel("Normalized Erasure (words erased / final word)")
    for ax in axes:
        ax.set_ylabel("BLEU")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    uniq = dict(zip(labels, handles, strict=True))
    fig.legend(uniq.values(), uniq.keys(), loc="lower center", ncol=3, fontsize=8)
    fig.suptitle("ReTA on Multi30k test_2016_flickr en→de (k = display mask)")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="test_2016_flickr")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--beams", default="1,4")
    ap.add_argument("--masks", default="0,2,4")
    ap.add_argument("--prefixes", default="off,forced,biased")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/reta_grid"))
    args = ap.parse_args()
    data = multi30k_dir()
    sources = read_lines(data / f"{args.split}.en")
    refs = read_lines(data / f"{args.split}.de")
    if args.limit:
        sources, refs = sources[: args.limit], refs[: args.limit]
    rows = run_grid(sources, refs, args.model, [int(b) for b in args.beams.split(",")],
                    [int(m) for m in args.masks.split(",")], args.prefixes.split(","))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"split": args.split, "n": len(sources), "threads": 1, "machine": platform.processor() or platform.machine(),
            "command": "python -m benchmarks.reta_grid" + (f" --limit {args.limit}" if args.limit else "")}
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    write_table(rows, args.out.with_suffix(".md"),
                f"ReTA grid on {args.split} ({len(sources)} sentences, one thread, one process). "
                f"Latency in source words; *_CA at 400 ms/word.")
    plot(rows, args.out.with_suffix(".png"))
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
