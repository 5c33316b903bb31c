"""Memory over a long recording: the whole cascade (file decoding → VAD → streaming ASR → policy) on hours of audio.

    .venv/bin/python -m benchmarks.long_audio [--minutes 120] [--policy reta] [--clip FILE]
        [--out benchmarks/results/long_audio]

The recording is built from a real speech clip repeated with pauses of varied length and a little noise (so VAD
cuts it into utterances and every stage works all along), written as 44.1 kHz stereo FLAC (so decoding,
down-mixing and resampling are part of the run), then replayed as fast as possible. The process's resident
memory (``/proc/self/statm``) is sampled every audio minute. Writes ``OUT.json``, ``OUT.md`` and ``OUT.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from tqdm import tqdm

from app.audio_sources import file_source
from app.policies import PolicyConfig
from app.speech_session import SpeechConfig, SpeechModels

DEFAULT_CLIP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "speech" / "jfk" / "jfk.16k.wav"
RATE = 44100


def rss_mb() -> float:
    """Resident set size of this process in MB."""
    with open("/proc/self/statm", encoding="ascii") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def build_recording(clip: Path, minutes: float, path: Path, seed: int = 0) -> float:
    """Write ``minutes`` of clip + pauses (0.4–3 s) + noise as 44.1 kHz stereo FLAC; returns its seconds."""
    import soxr

    speech, sr = sf.read(clip, dtype="float32", always_2d=True)
    speech = soxr.resample(speech.mean(axis=1), sr, RATE).astype(np.float32)
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * RATE)
    written = 0
    with sf.SoundFile(path, "w", samplerate=RATE, channels=2, format="FLAC", subtype="PCM_16") as f:
        while written < total:
            gap = np.zeros(int(rng.uniform(0.4, 3.0) * RATE), dtype=np.float32)
            part = np.concatenate([speech * rng.uniform(0.5, 1.0), gap])[: total - written]
            part = part + 0.003 * rng.standard_normal(part.size).astype(np.float32)
            f.write(np.stack([part, part], axis=1))
            written += part.size
    return written / RATE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=120.0)
    ap.add_argument("--policy", default="reta")
    ap.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/long_audio"))
    args = ap.parse_args()
    models = SpeechModels(SpeechConfig(policy=PolicyConfig(name=args.policy)))
    pipe = models.pipeline()
    samples: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.flac"
        seconds = build_recording(args.clip, args.minutes, path)
        size_mb = path.stat().st_size / 1e6
        t0 = time.perf_counter()
        next_mark = 0.0
        finals = 0
        bar = tqdm(total=round(seconds / 60), unit="audio min", desc="replay")
        for chunk in file_source(path):
            finals += sum(e.type == "final" for e in pipe.feed(chunk.samples))
            if pipe.audio_ms >= next_mark:
                samples.append({"audio_min": pipe.audio_ms / 60000, "rss_mb": rss_mb(), "finals": finals,
                                "segments_kept": len(pipe.segments)})
                next_mark += 60000
                bar.update(1)
        finals += sum(e.type == "final" for e in pipe.finish())
        bar.close()
        wall = time.perf_counter() - t0
    samples.append({"audio_min": pipe.audio_ms / 60000, "rss_mb": rss_mb(), "finals": finals,
                    "segments_kept": len(pipe.segments)})
    after_warmup = [s["rss_mb"] for s in samples if s["audio_min"] >= 5] or [s["rss_mb"] for s in samples]
    result: dict[str, Any] = {
        "meta": {"minutes": seconds / 60, "file_mb": size_mb, "policy": args.policy, "wall_s": wall,
                 "wall_rtf": wall / seconds, "machine": f"{platform.machine()} {platform.processor()}".strip(),
                 "command": f"python -m benchmarks.long_audio --minutes {args.minutes:g} --policy {args.policy}"},
        "rss_at_5_min_mb": after_warmup[0], "rss_end_mb": samples[-1]["rss_mb"],
        "rss_max_after_5_min_mb": max(after_warmup), "finals": finals, "samples": samples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    growth = result["rss_end_mb"] - result["rss_at_5_min_mb"]
    md = [f"# Memory over a {seconds / 60:.0f}-minute recording (policy {args.policy})", "",
          f"Command: `{result['meta']['command']}`  ",
          f"44.1 kHz stereo FLAC of {size_mb:.0f} MB, replayed as fast as possible in {wall / 60:.1f} min "
          f"(wall RTF {wall / seconds:.3f}); {finals} final captions.", "",
          "| | resident memory (MB) |", "|---|---:|",
          f"| after 5 audio minutes | {result['rss_at_5_min_mb']:.0f} |",
          f"| highest after that | {result['rss_max_after_5_min_mb']:.0f} |",
          f"| at the end | {result['rss_end_mb']:.0f} |",
          f"| growth from minute 5 to the end | {growth:+.1f} |", "",
          "Finished captions are kept for the run's scores and subtitles (a caption is never dropped, its "
          "revision history is reduced to an erased-word count): that is the state meant to grow with the "
          f"recording, here {max(0.0, growth) * 1e6 / max(1, finals):.0f} bytes of growth per final caption."]
    args.out.with_suffix(".md").write_text("\n".join(md) + "\n", encoding="utf-8")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot([s["audio_min"] for s in samples], [s["rss_mb"] for s in samples])
    ax.set_xlabel("audio minutes replayed")
    ax.set_ylabel("resident memory (MB)")
    ax.set_ylim(0, max(s["rss_mb"] for s in samples) * 1.2)
    ax.grid(alpha=0.3)
    ax.set_title(f"simulsub replay, {seconds / 60:.0f} min recording, policy {args.policy}")
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=120)
    print("\n".join(md))


if __name__ == "__main__":
    main()
