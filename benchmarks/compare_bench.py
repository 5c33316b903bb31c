"""Compare two ``simulsub bench`` results (``bench.json``): did a change keep every quality and latency figure?

Quality and latency in source units (BLEU, chrF, AL, LAAL, DAL, AP, NE, WER) are deterministic for a given code and
model: a refactoring must leave them exactly as they were. Compute-based figures (``*_CA``, ms per sentence, RTF)
are measured time and differ between any two runs; they are shown side by side, never compared.

    .venv/bin/python -m benchmarks.compare_bench BEFORE/bench.json AFTER/bench.json --out benchmarks/results/NAME
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

DETERMINISTIC = ("BLEU", "chrF", "AL", "LAAL", "DAL", "AP", "NE", "WER")
TIMED = ("AL_CA", "LAAL_CA", "compute_ms_per_sentence", "rtf")


def compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Per section (text, speech) and system: each deterministic figure before/after and the largest gap."""
    rows: list[dict[str, Any]] = []
    worst = 0.0
    for section in ("text", "speech"):
        for system, old in before.get(section, {}).items():
            new = after.get(section, {}).get(system)
            if new is None:
                rows.append({"section": section, "system": system, "missing_after": True})
                worst = math.inf
                continue
            gaps = {k: abs(float(old[k]) - float(new[k])) for k in DETERMINISTIC if k in old and k in new}
            worst = max([worst, *gaps.values()])
            rows.append({"section": section, "system": system,
                         "before": {k: old[k] for k in (*DETERMINISTIC, *TIMED) if k in old},
                         "after": {k: new[k] for k in (*DETERMINISTIC, *TIMED) if k in new},
                         "max_gap": max(gaps.values(), default=0.0)})
    for key in ("offline_WER", "streaming_WER"):
        if key in before.get("asr", {}) and key in after.get("asr", {}):
            worst = max(worst, abs(float(before["asr"][key]) - float(after["asr"][key])))
    return {"rows": rows, "max_gap": worst, "identical": worst == 0.0,
            "asr_before": before.get("asr", {}), "asr_after": after.get("asr", {})}


def report(result: dict[str, Any], before_name: str, after_name: str) -> str:
    """Markdown: one table per section, deterministic figures as before → after."""
    lines = [f"# `simulsub bench` before and after: {before_name} → {after_name}", "",
             "Deterministic figures (source words or ms of audio, BLEU, NE, WER) must be identical; compute-based "
             "ones (*_CA, ms per sentence, RTF) are measured time and shown for reference only.", ""]
    for section in ("text", "speech"):
        rows = [r for r in result["rows"] if r["section"] == section and "before" in r]
        if not rows:
            continue
        keys = [k for k in DETERMINISTIC if k in rows[0]["before"]]
        timed = [k for k in TIMED if k in rows[0]["before"]]
        lines += [f"## {section}", "", "| system | " + " | ".join(keys) + " | largest gap | "
                  + " | ".join(f"{k} before / after" for k in timed) + " |",
                  "|---|" + "---:|" * (len(keys) + 1 + len(timed))]
        for r in rows:
            det = " | ".join(f"{r['before'][k]:.4f}" + ("" if r["before"][k] == r["after"].get(k)
                                                        else f" → {r['after'].get(k, float('nan')):.4f}")
                             for k in keys)
            tim = " | ".join(f"{r['before'][k]:.3g} / {r['after'].get(k, float('nan')):.3g}" for k in timed)
            lines.append(f"| {r['system']} | {det} | {r['max_gap']:.1e} | {tim} |")
        lines.append("")
    lines.append(f"Largest gap over every deterministic figure: **{result['max_gap']:.1e}** — "
                 + ("identical." if result["identical"] else "CHANGED."))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="compare two simulsub bench results (bench.json)")
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    ap.add_argument("--before-name", default="before")
    ap.add_argument("--after-name", default="after")
    args = ap.parse_args(argv)
    result = compare(json.loads(args.before.read_text(encoding="utf-8")),
                     json.loads(args.after.read_text(encoding="utf-8")))
    text = report(result, args.before_name, args.after_name)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(text, encoding="utf-8")
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(text)
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
