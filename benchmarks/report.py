"""``BENCHMARKS.md`` and its plots from the results of ``simulsub bench`` (``benchmarks/results/bench.json``)."""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

TEXT_COLUMNS = ("BLEU", "AL", "LAAL", "AL_CA", "LAAL_CA", "NE", "compute_ms_per_sentence")
SPEECH_COLUMNS = ("BLEU", "WER", "AL", "LAAL", "LAAL_CA", "NE", "rtf")


def _f(v: Any, digits: int = 2) -> str:
    return f"{v:.{digits}f}" if isinstance(v, int | float) else "–"


def _ms_to_s(v: Any) -> Any:
    return v / 1000.0 if isinstance(v, int | float) else v


def text_table(text: dict[str, dict[str, float]]) -> list[str]:
    base = text.get("fretna", {}).get("compute_ms_per_sentence")
    lines = ["| system | BLEU | AL | LAAL | AL_CA | LAAL_CA | NE | ms / sentence | compute vs fretna |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, s in text.items():
        ratio = f"{s['compute_ms_per_sentence'] / base:.2f}×" if base else "–"
        lines.append(f"| {label} | " + " | ".join(_f(s.get(c)) for c in TEXT_COLUMNS) + f" | {ratio} |")
    return lines


def speech_table(speech: dict[str, dict[str, float]], text: dict[str, dict[str, float]], *,
                 comparable: bool = True) -> list[str]:
    """``comparable``: text and speech scored the same sentences, so their BLEU ratio means something."""
    lines = ["| system | BLEU | WER | AL (s) | LAAL (s) | LAAL_CA (s) | NE | RTF | speech / text BLEU |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, s in speech.items():
        t = text.get(label, {}).get("BLEU")
        share = f"{100 * s['BLEU'] / t:.0f} %" if t and comparable else "–"
        lines.append(f"| {label} | {_f(s.get('BLEU'))} | {_f(s.get('WER'))} | {_f(_ms_to_s(s.get('AL')))} | "
                     f"{_f(_ms_to_s(s.get('LAAL')))} | {_f(_ms_to_s(s.get('LAAL_CA')))} | {_f(s.get('NE'))} | "
                     f"{_f(s.get('rtf'), 3)} | {share} |")
    return lines


def key_ratios(text: dict[str, dict[str, float]]) -> str:
    cost = {k: v["compute_ms_per_sentence"] for k, v in text.items()}
    pairs = [("reta beam 4", "fretna"), ("reta beam 1", "fretna"), ("waitk k=5", "fretna"), ("llm medium", "fretna"),
             ("reta beam 4", "waitk k=5"), ("llm medium", "reta beam 4")]
    parts = [f"{a} / {b} = **{cost[a] / cost[b]:.2f}×**" for a, b in pairs if a in cost and b in cost]
    return "Compute ratios per sentence (same run): " + "; ".join(parts) + "." if parts else ""


def plot(result: dict[str, Any], results_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    text, speech = result["text"], result["speech"]
    fig, axes = plt.subplots(1, 2 if speech else 1, figsize=(11 if speech else 6, 4.2), squeeze=False)
    ax = axes[0][0]
    for label, s in text.items():
        ax.scatter(s["LAAL"], s["BLEU"], label=label)
    ax.set_xlabel("LAAL (source words)")
    ax.set_ylabel("BLEU")
    ax.set_title(f"text, {result['n_text']} sentences")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if speech:
        ax = axes[0][1]
        for label, s in speech.items():
            ax.scatter(s["LAAL"] / 1000, s["BLEU"], label=label)
            ax.scatter(s["LAAL_CA"] / 1000, s["BLEU"], marker="x", color="grey")
        ax.set_xlabel("LAAL (s; × = computation-aware)")
        ax.set_title(f"speech, {result['n_speech']} recordings")
        ax.grid(alpha=0.3)
    fig.suptitle("simulsub: quality vs latency, en→de Multi30k test_2016_flickr")
    fig.tight_layout()
    first = results_dir / "bench_quality_latency.png"
    fig.savefig(first, dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = list(text)
    ax.barh(labels, [text[k]["compute_ms_per_sentence"] for k in labels])
    ax.set_xlabel(f"compute per sentence (ms, {result['machine']['threads']} thread(s), {result['machine']['device']})")
    ax.invert_yaxis()
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    second = results_dir / "bench_compute.png"
    fig.savefig(second, dpi=120)
    plt.close(fig)
    return [first, second]


def write_report(result: dict[str, Any], out: Path, results_dir: Path) -> Path:
    """Write ``out`` (markdown) and the plots; image links are relative to ``out``."""
    images = plot(result, results_dir)
    m = result["machine"]
    rel = [os.path.relpath(p, out.parent) for p in images]
    lines = [
        "# simulsub benchmarks", "",
        f"Made by `{result['command']}` on {datetime.date.today().isoformat()} in {result['minutes']} min; "
        f"machine-readable results in `{os.path.relpath(results_dir / 'bench.json', out.parent)}`.", "",
        "| machine | |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in m.items()], "",
        "Every system runs in the same process, one after another, with the same thread count. Text latency is in "
        "source words (the *_CA variants turn compute into words at 400 ms per word); speech latency is in seconds "
        "of audio. Compute per sentence is measured (the lowest of two alternating passes unless `--quick`).", "",
        f"## Text: {result['n_text']} sentences fed word by word", "",
        *text_table(result["text"]), "", key_ratios(result["text"]), "",
        f"![quality vs latency]({rel[0]})", "", f"![compute per sentence]({rel[1]})", "",
    ]
    if result["speech"]:
        asr = result["asr"]
        lines += [
            f"## Speech: {result['n_speech']} recordings (held-out espeak voices), full cascade", "",
            "VAD → streaming ASR (the default: Whisper-Paraformer, 600 ms chunks, 300 ms look-ahead) → policy. The "
            "ASR runs once; each policy "
            "gets the same hypotheses with the ASR compute time measured on that run.", "",
            *speech_table(result["speech"], result["text"], comparable=result["n_speech"] == result["n_text"]), "",
            *([] if result["n_speech"] == result["n_text"] else
              [f"No speech / text BLEU: the text rows scored {result['n_text']} sentences, these "
               f"{result['n_speech']} (`--text-limit N --speech-limit N` compares the same sentences).", ""]),
            "## ASR alone", "",
            "| decoding | WER | RTF |", "|---|---:|---:|",
            f"| offline | {_f(asr.get('offline_WER'))} | {_f(asr.get('offline_rtf'), 4)} |",
            f"| streaming | {_f(asr.get('streaming_WER'))} | {_f(asr.get('streaming_rtf'), 4)} |", "",
        ]
    lines += real_speech_section(results_dir, out)
    lines += included_section(results_dir, out, "server_reliability", "Server reliability")
    lines += included_section(results_dir, out, "server_batching", "Server capacity by configuration")
    lines += included_section(results_dir, out, "server_batching_runs", "Server capacity over repeated runs (batching)")
    lines += included_section(results_dir, out, "server_ray", "Server capacity with Ray Serve")
    lines += included_section(results_dir, out, "server_procs_runs", "Server capacity over repeated runs")
    lines += included_section(results_dir, out, "simuleval_agreement", "simulsub score vs SimulEval")
    if result["notes"]:
        lines += ["## Notes", "", *[f"- {n}" for n in result["notes"]], ""]
    out.write_text("\n".join(lines), encoding="utf-8")
    return out


def real_speech_section(results_dir: Path, out: Path) -> list[str]:
    """The latest ``python -m benchmarks.asr_real`` result (its own run, real human clips), one level down."""
    return included_section(results_dir, out, "asr_real", "ASR on real speech")


def included_section(results_dir: Path, out: Path, name: str, alt: str) -> list[str]:
    """``NAME.md`` of a benchmark that has its own run (with its plot ``NAME.png``), one heading level down."""
    md = results_dir / f"{name}.md"
    if not md.is_file():
        return []
    body = md.read_text(encoding="utf-8").splitlines()
    body = ["#" + ln if ln.startswith("#") else ln for ln in body]
    png = results_dir / f"{name}.png"
    if png.is_file():
        body += ["", f"![{alt}]({os.path.relpath(png, out.parent)})"]
    return [*body, ""]
