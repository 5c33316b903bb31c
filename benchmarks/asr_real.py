"""The ASRs on real human speech, side by side: Whisper AR + LocalAgreement-2 (``whisper``), the small
synthetic-only paraformer-en (``edge``) and, once bundled, Whisper-Paraformer (``default``), or any ASR directory.

    .venv/bin/python -m benchmarks.asr_real [--tsv ../shared/data/speech/human-en.tsv] [--espeak 300]
        [--systems whisper,edge] [--asr-model DIR] [--whisper-beam 5] [--cascade [--cascade-asr whisper]]
        [--out benchmarks/results/asr_real]

For every system, on the same audio, in one run on one thread: per-clip and pooled WER of the real clips offline and
streaming (100 ms pieces, as a microphone delivers them), streaming RTF (all compute / audio), the latency of the
committed words (SimulEval-style AL in ms: word i counts as committed at the first update after which words 1..i
never change again; ``_CA`` adds the compute spent so far, an unpaced simulation), the delay of the final after
the segment's last sample (its compute), and WER on espeak renderings with held-out voices (the bundled
held-out test set: test_2016_flickr, seed 7). ``--cascade`` also runs the whole speech cascade (VAD → ASR →
ReTA en→de) on the real clips and records the German captions. Writes ``OUT.json``, ``OUT.md`` and ``OUT.png``.
The real clips are a test set: nothing here trains or tunes on them.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.asr import AsrEngine, load_asr_engine, resolve_asr
from models.asr.audio import load_audio
from models.asr.streaming import AsrUpdate
from streaming.metrics.latency import average_lagging
from streaming.metrics.quality import word_error_rate
from streaming.metrics.runtime import real_time_factor, rounded

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TSV = REPO.parent / "shared" / "data" / "speech" / "human-en.tsv"
LABELS = {"default": "default profile", "whisper": "Whisper-base AR + LocalAgreement-2 (whisper)",
          "edge": "paraformer-en (edge)"}


@dataclass
class Clip:
    name: str
    audio: np.ndarray
    reference: str

    @property
    def seconds(self) -> float:
        return self.audio.size / 16000


def read_clips(tsv: Path) -> list[Clip]:
    clips = []
    for line in tsv.read_text(encoding="utf-8").splitlines():
        if "\t" not in line:
            continue
        rel, text = line.split("\t", 1)
        clips.append(Clip(rel, load_audio(tsv.parent / rel), text.strip()))
    return clips


def committed_delays(updates: list[AsrUpdate], final_words: list[str]) -> tuple[list[float], list[float]]:
    """Per final word: the audio ms at which it and every word before it stopped changing, and the same plus the
    compute spent up to that update (computation-aware)."""
    elapsed, cum = [], 0.0
    for u in updates:
        cum += u.compute_ms
        elapsed.append(cum)
    delays, delays_ca = [], []
    for i in range(len(final_words)):
        first = len(updates) - 1
        for j in range(len(updates) - 1, -1, -1):
            if list(updates[j].words[: i + 1]) == final_words[: i + 1]:
                first = j
            else:
                break
        delays.append(updates[first].audio_ms)
        delays_ca.append(updates[first].audio_ms + elapsed[first])
    return delays, delays_ca


def stream_clip(engine: AsrEngine, clip: Clip, *, step_ms: float = 100.0) -> tuple[list[AsrUpdate], float]:
    rec = engine.recognizer()
    step = int(16000 * step_ms / 1000)
    updates: list[AsrUpdate] = []
    t0 = time.perf_counter()
    for i in range(0, clip.audio.size, step):
        updates.extend(rec.feed(clip.audio[i : i + step]))
    updates.append(rec.finish())
    return updates, time.perf_counter() - t0


def run_system(engine: AsrEngine, clips: list[Clip], espeak: list[Clip]) -> dict[str, Any]:
    refs = [c.reference for c in clips]
    per_clip: list[dict[str, Any]] = []
    off_texts, str_texts = [], []
    t_off = t_str = 0.0
    al, al_ca, final_lag = [], [], []
    for clip in clips:
        t0 = time.perf_counter()
        off = engine.transcribe(clip.audio)
        t_off += time.perf_counter() - t0
        updates, secs = stream_clip(engine, clip)
        t_str += secs
        final = updates[-1]
        words = list(final.words)
        if words:
            d, dca = committed_delays(updates, words)
            src_ms = clip.seconds * 1000
            ref_len = len(clip.reference.split())
            al.append(average_lagging(d, src_ms, ref_len))
            al_ca.append(average_lagging(dca, src_ms, ref_len))
        final_lag.append(final.compute_ms)
        off_texts.append(off)
        str_texts.append(final.text)
        per_clip.append({"clip": clip.name, "seconds": round(clip.seconds, 2),
                         "offline_WER": round(word_error_rate([off], [clip.reference]), 2),
                         "streaming_WER": round(word_error_rate([final.text], [clip.reference]), 2),
                         "offline": off, "streaming": final.text, "updates": len(updates)})
    audio_s = sum(c.seconds for c in clips)
    out: dict[str, Any] = {
        "name": engine.name, "decoding": engine.decoding_summary,
        "real_offline_WER": round(word_error_rate(off_texts, refs), 2),
        "real_streaming_WER": round(word_error_rate(str_texts, refs), 2),
        "offline_rtf": rounded(real_time_factor(t_off, audio_s), 4),
        "streaming_rtf": rounded(real_time_factor(t_str, audio_s), 4),
        "committed_AL_ms": round(float(np.mean(al)), 1) if al else None,
        "committed_AL_CA_ms": round(float(np.mean(al_ca)), 1) if al_ca else None,
        "final_lag_ms_mean": round(float(np.mean(final_lag)), 1),
        "final_lag_ms_max": round(float(np.max(final_lag)), 1),
        "per_clip": per_clip,
    }
    if espeak:
        t0 = time.perf_counter()
        hyps = [engine.transcribe(c.audio) for c in espeak]
        out["espeak_offline_WER"] = round(word_error_rate(hyps, [c.reference for c in espeak]), 2)
        out["espeak_offline_rtf"] = rounded(real_time_factor(time.perf_counter() - t0,
                                                              sum(c.seconds for c in espeak)), 4)
        out["espeak_utterances"] = len(espeak)
    return out


def espeak_clips(n: int) -> list[Clip]:
    """The first ``n`` utterances of the bundled held-out espeak test set (rendered once into work/bench)."""
    if n <= 0:
        return []
    from benchmarks.suite import BenchOptions, rendered_test_set

    speech = rendered_test_set(BenchOptions(speech_limit=n))
    return [Clip(Path(w).name, load_audio(w), t) for w, t in zip(speech.audio, speech.transcripts, strict=True)]


def run_cascade(clips: list[Clip], profile: str) -> list[dict[str, str]]:
    """The live cascade (silero VAD → the profile's ASR → ReTA beam 4, en→de) on each clip: heard text, caption."""
    from app.policies import PolicyConfig
    from app.speech_session import SpeechConfig, SpeechModels

    models = SpeechModels(SpeechConfig(policy=PolicyConfig(name="reta", beam=4), asr_profile=profile))
    rows = []
    for clip in clips:
        pipe = models.pipeline()
        for i in range(0, clip.audio.size, 1600):
            pipe.feed(clip.audio[i : i + 1600])
        pipe.finish()
        rows.append({"clip": clip.name, "heard": " | ".join(seg.source for seg in pipe.segments),
                     "german": " | ".join(seg.record.prediction for seg in pipe.segments)})
    return rows


def write_report(result: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    systems = result["systems"]
    lines = [
        "# ASR on real human speech",
        "",
        f"`{result['command']}` — {result['machine']}, one thread, one run. {result['clips']} real English clips "
        f"({result['audio_s']:.0f} s: JFK, 10 FLEURS, LibriSpeech), never used for training or tuning. WER: jiwer, "
        "lower-cased, punctuation removed. Streaming: 100 ms pieces, 600 ms chunks + 300 ms look-ahead (NAR), "
        "re-decoding every 900 ms (AR); the final is a second pass over the whole segment (both). Committed-word AL: "
        "SimulEval's AL over the delays at which each word became final.",
        "",
        "| system | real WER offline | real WER streaming | espeak held-out WER | streaming RTF | offline RTF "
        "| committed AL (ms) | AL_CA (ms) | final after end (ms, mean / max) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, s in systems.items():
        lines.append(f"| {LABELS.get(key, key)} | {s['real_offline_WER']:.2f} | {s['real_streaming_WER']:.2f} | "
                     f"{s.get('espeak_offline_WER', float('nan')):.2f} | {s['streaming_rtf']:.3f} | "
                     f"{s['offline_rtf']:.3f} | {s['committed_AL_ms']} | {s['committed_AL_CA_ms']} | "
                     f"{s['final_lag_ms_mean']:.0f} / {s['final_lag_ms_max']:.0f} |")
    for key, extra in result.get("offline_only", {}).items():
        lines.append(f"| {key} | {extra['real_offline_WER']:.2f} | – | – | – | {extra['offline_rtf']:.3f} "
                     "| – | – | – |")
    lines += ["", "## Per clip (WER %, offline / streaming)", "",
              "| clip | s | " + " | ".join(LABELS.get(k, k) for k in systems) + " |",
              "|---|---:|" + "---:|" * len(systems)]
    names = [c["clip"] for c in next(iter(systems.values()))["per_clip"]]
    for i, name in enumerate(names):
        cells = [f"{s['per_clip'][i]['offline_WER']:.1f} / {s['per_clip'][i]['streaming_WER']:.1f}"
                 for s in systems.values()]
        secs = next(iter(systems.values()))["per_clip"][i]["seconds"]
        lines.append(f"| {name} | {secs} | " + " | ".join(cells) + " |")
    if result.get("cascade"):
        lines += ["", f"## The whole cascade on the real clips (VAD → `{result['cascade_asr']}` ASR → ReTA beam 4, "
                  "German captions; ` | ` separates VAD segments)", "",
                  "| clip | heard | German caption |", "|---|---|---|"]
        lines += [f"| {r['clip']} | {r['heard']} | {r['german']} |" for r in result["cascade"]]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot(systems, out.with_suffix(".png"))


def plot(systems: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(systems)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(keys))
    a.bar(x - 0.2, [systems[k]["real_offline_WER"] for k in keys], 0.4, label="offline")
    a.bar(x + 0.2, [systems[k]["real_streaming_WER"] for k in keys], 0.4, label="streaming")
    a.set_xticks(x, [LABELS.get(k, k).replace(" + ", "\n+ ").replace(" (", "\n(") for k in keys], fontsize=7)
    a.set_ylabel("WER % on real speech (12 clips)")
    a.legend()
    for k in keys:
        s = systems[k]
        b.scatter(s["streaming_rtf"], s["real_streaming_WER"], s=60)
        b.annotate(LABELS.get(k, k), (s["streaming_rtf"], s["real_streaming_WER"]), fontsize=8,
                   xytext=(4, 4), textcoords="offset points")
    b.set_xlabel("streaming RTF (1 thread)")
    b.set_ylabel("streaming WER %")
    b.set_xscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.asr_real", description=__doc__.split("\n\n")[0])
    p.add_argument("--tsv", type=Path, default=DEFAULT_TSV, help="real clips: path<TAB>transcript lines")
    p.add_argument("--espeak", type=int, default=300, help="held-out espeak utterances to score too (0: none)")
    p.add_argument("--systems", default="whisper,edge", help="ASR profiles to compare (default whisper,edge)")
    p.add_argument("--asr-model", type=Path, action="append", default=[], metavar="DIR",
                   help="also compare this ASR directory (repeatable)")
    p.add_argument("--whisper-beam", type=int, default=5, help="also score Whisper AR offline with this beam (0: no)")
    p.add_argument("--cascade", action="store_true", help="also run the whole cascade (German captions)")
    p.add_argument("--cascade-asr", default="whisper", help="ASR profile of the cascade run (default whisper)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "asr_real")
    args = p.parse_args(argv)
    clips = read_clips(args.tsv)
    espeak = espeak_clips(args.espeak)
    systems: dict[str, Any] = {}
    todo = [(k.strip(), resolve_asr(k.strip())) for k in args.systems.split(",") if k.strip()]
    todo += [(str(d), resolve_asr("default", d)) for d in args.asr_model]
    for key, choice in todo:
        engine = load_asr_engine(choice, threads=1)
        systems[key] = run_system(engine, clips, espeak)
        print(key, {k: v for k, v in systems[key].items() if k != "per_clip"}, flush=True)
    offline_only = {}
    if args.whisper_beam > 1:
        engine = load_asr_engine(resolve_asr("whisper"), threads=1, beam=args.whisper_beam)
        t0 = time.perf_counter()
        hyps = [engine.transcribe(c.audio) for c in clips]
        offline_only[f"Whisper-base AR, beam {args.whisper_beam} (offline)"] = {
            "real_offline_WER": round(word_error_rate(hyps, [c.reference for c in clips]), 2),
            "offline_rtf": round((time.perf_counter() - t0) / sum(c.seconds for c in clips), 4)}
    result = {"command": "python -m benchmarks.asr_real" + (" " + " ".join(argv) if argv else ""),
              "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
              "clips": len(clips), "audio_s": sum(c.seconds for c in clips), "systems": systems,
              "offline_only": offline_only, "cascade_asr": args.cascade_asr,
              "cascade": run_cascade(clips, args.cascade_asr) if args.cascade else []}
    write_report(result, args.out)
    print(f"wrote {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
