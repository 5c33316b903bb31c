"""``simulsub bench``: every policy, as text and as speech, plus the ASR, back to back on one machine.

What runs (one process, the same thread count for every model, systems one after another):

1. Text: test_2016_flickr fed word by word to every policy with a bundled model — ReTA beam 1 and 4, FReTNA,
   wait-k k = 3/5/7, the LLM at low/medium/high latency: BLEU, AL, LAAL, AL_CA, LAAL_CA, NE, compute per
   sentence and its ratio to FReTNA. The full run replays twice in alternating order and keeps each system's
   lowest compute (background noise then inflates no system more than another).
2. Speech: the same sentences rendered with held-out espeak voices (``models.speech_corpus``, cached under
   ``work/bench``), through the whole cascade (VAD → streaming ASR → policy) with the ASR run once and replayed
   to every policy (``benchmarks.speech_eval``): BLEU, WER, LAAL / LAAL_CA in ms, NE, RTF; speech BLEU as a
   share of the same policy's text BLEU.
3. ASR alone: WER and RTF of offline and streaming decoding on those recordings.

Writes ``BENCHMARKS.md`` (tables, ratios, the machine), ``benchmarks/results/bench.json`` and two plots
(quality vs latency; compute per sentence). ``--quick``: 100 sentences of text and 30 recordings, one pass.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.policies import PolicyConfig, build_policy
from app.profiles import DEFAULT_LLM_MODEL, DEFAULT_NAT_MODEL, DEFAULT_WAITK_MODEL, REPO_ROOT
from benchmarks.fretna_vs_reta import System, replay
from streaming.metrics.runtime import real_time_factor

logger = logging.getLogger(__name__)

@dataclass
class BenchOptions:
    """``quick``: a smoke-sized run; ``device``: resolved ``cpu`` or ``cuda``; files relative to the repo."""

    quick: bool = False
    out: Path = REPO_ROOT / "BENCHMARKS.md"
    results_dir: Path = REPO_ROOT / "benchmarks" / "results"
    cache_dir: Path = REPO_ROOT / "work" / "bench"
    threads: int = 1
    device: str = "cpu"
    split: str = "test_2016_flickr"
    text_limit: int = 0  # 0: 1000 (full) / 100 (quick)
    speech_limit: int = 0  # 0: 1000 (full) / 30 (quick)
    notes: list[str] = field(default_factory=list)

    @property
    def n_text(self) -> int:
        return self.text_limit or (100 if self.quick else 1000)

    @property
    def n_speech(self) -> int:
        return self.speech_limit or (30 if self.quick else 1000)


def policy_systems(opts: BenchOptions) -> list[System]:
    """Every policy whose bundled model is present (missing ones are noted in ``opts.notes``)."""
    base = {"threads": opts.threads, "device": opts.device}
    systems = [System("reta beam 4", PolicyConfig(name="reta", beam=4, **base)),  # type: ignore[arg-type]
               System("reta beam 1", PolicyConfig(name="reta", beam=1, **base))]  # type: ignore[arg-type]
    if DEFAULT_NAT_MODEL.is_dir():
        systems.append(System("fretna", PolicyConfig(name="fretna", **base)))  # type: ignore[arg-type]
    else:
        opts.notes.append(f"fretna skipped: {DEFAULT_NAT_MODEL} is missing")
    if DEFAULT_WAITK_MODEL.is_dir():
        systems += [System(f"waitk k={k}", PolicyConfig(name="waitk", k=k, **base))  # type: ignore[arg-type]
                    for k in (3, 5, 7)]
    else:
        opts.notes.append(f"waitk skipped: {DEFAULT_WAITK_MODEL} is missing")
    if DEFAULT_LLM_MODEL.is_dir():
        systems += [System(f"llm {lv}", PolicyConfig(name="llm", latency=lv, **base))  # type: ignore[arg-type]
                    for lv in ("low", "medium", "high")]
    else:
        opts.notes.append(f"llm skipped: {DEFAULT_LLM_MODEL} is missing (simulsub train llm-simt --export)")
    return systems


def machine_description(opts: BenchOptions) -> dict[str, str]:
    """CPU, cores, memory, OS and runtime versions, for the report."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text(encoding="utf-8").split()[1])
        mem = f"{kb / 1e6:.0f} GB"
    except (OSError, ValueError, IndexError):
        pass
    versions = {}
    for mod in ("onnxruntime", "ctranslate2", "torch", "transformers"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = "not installed"
    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory": mem, "os": platform.platform(),
            "python": platform.python_version(), "device": opts.device, "threads": str(opts.threads),
            **versions}


def run_text(opts: BenchOptions, systems: list[System]) -> dict[str, dict[str, float]]:
    from models.text.data import multi30k_dir, read_lines

    data = multi30k_dir()
    sources = read_lines(data / f"{opts.split}.en")[: opts.n_text]
    refs = read_lines(data / f"{opts.split}.de")[: opts.n_text]
    results: dict[str, dict[str, float]] = {}
    for rep in range(1 if opts.quick else 2):
        for system in systems if rep % 2 == 0 else systems[::-1]:
            scores = replay(system, sources, refs)
            if system.label not in results:
                results[system.label] = scores
            else:
                results[system.label]["compute_ms_per_sentence"] = min(
                    results[system.label]["compute_ms_per_sentence"], scores["compute_ms_per_sentence"])
    return results


def rendered_test_set(opts: BenchOptions) -> Any:
    """The held-out-voice rendering of the test split (rendered once, cached), as a SpeechSet."""
    from benchmarks.speech_eval import SpeechSet
    from models.speech_corpus.corpus import CorpusOptions, build_corpus
    from models.speech_corpus.voices import VoicePlan
    from models.text.data import multi30k_dir, read_lines

    data = multi30k_dir()
    n = len(read_lines(data / f"{opts.split}.en"))
    limit = opts.n_speech if opts.n_speech < n else 0
    out = opts.cache_dir / (f"{opts.split}-heldout-s7" + (f"-first{limit}" if limit else ""))
    build_corpus(CorpusOptions(data / f"{opts.split}.en", out, seed=7, copies=1, limit=limit,
                               plan=VoicePlan.clean("heldout"), jobs=2, write_wavs=True))
    wavs = [Path(x) for x in (out / "wavs.txt").read_text(encoding="utf-8").splitlines()][: opts.n_speech]
    refs = read_lines(data / f"{opts.split}.de")[: len(wavs)]
    texts = (out / "text.txt").read_text(encoding="utf-8").splitlines()[: len(wavs)]
    return SpeechSet(f"{opts.split} (held-out voices)", wavs, refs, texts)


def run_asr(speech: Any, opts: BenchOptions) -> dict[str, float]:
    """WER and RTF (compute / audio) of the default ASR, offline and streaming, on ``speech``."""
    import soundfile as sf

    from app.speech_session import SpeechConfig, load_asr
    from models.asr.paraformer.tokenizer import normalize_transcript
    from streaming.metrics.quality import word_error_rate

    asr = load_asr(SpeechConfig(threads=opts.threads, device=opts.device))
    refs = [normalize_transcript(t) for t in speech.transcripts]
    offline, streamed = [], []
    t_off = t_str = audio_s = 0.0
    recognizer = asr.recognizer()
    for path in speech.audio:
        audio, sr = sf.read(path, dtype="float32")
        audio_s += audio.size / sr
        t0 = time.perf_counter()
        offline.append(asr.transcribe(audio))
        t1 = time.perf_counter()
        recognizer.reset()
        for start in range(0, audio.size, 1600):
            recognizer.feed(audio[start : start + 1600])
        streamed.append(" ".join(recognizer.finish().words))
        t_off += t1 - t0
        t_str += time.perf_counter() - t1
    rtf_off, rtf_str = real_time_factor(t_off, audio_s), real_time_factor(t_str, audio_s)
    return {"offline_WER": word_error_rate(offline, refs), "streaming_WER": word_error_rate(streamed, refs),
            "offline_rtf": float("nan") if rtf_off is None else rtf_off,
            "streaming_rtf": float("nan") if rtf_str is None else rtf_str,
            "utterances": float(len(refs)), "audio_s": audio_s}


def run_speech(opts: BenchOptions, systems: list[System], speech: Any) -> dict[str, dict[str, float]]:
    from app.speech_session import SpeechConfig, SpeechModels
    from benchmarks.speech_eval import evaluate

    models = SpeechModels(SpeechConfig(policy=systems[0].config, threads=opts.threads, device=opts.device))
    return evaluate(models, [(s.label, s.config) for s in systems], speech)


def run_bench(opts: BenchOptions) -> dict[str, Any]:
    """Run everything and write the report; returns the results."""
    systems = policy_systems(opts)
    for s in systems:  # load every model before anything is timed
        build_policy(s.config)
    started = time.time()
    text = run_text(opts, systems)
    speech_scores: dict[str, dict[str, float]] = {}
    asr: dict[str, float] = {}
    from app.errors import UserError

    try:
        speech = rendered_test_set(opts)
        asr = run_asr(speech, opts)
        speech_scores = run_speech(opts, systems, speech)
    except (UserError, FileNotFoundError) as e:
        opts.notes.append(f"speech skipped: {e}")
    result = {"machine": machine_description(opts), "quick": opts.quick, "n_text": opts.n_text,
              "n_speech": opts.n_speech if speech_scores else 0, "text": text, "speech": speech_scores, "asr": asr,
              "notes": opts.notes, "minutes": round((time.time() - started) / 60, 1),
              "command": "simulsub bench" + (" --quick" if opts.quick else "")
              + (f" --device {opts.device}" if opts.device != "cpu" else "")}
    opts.results_dir.mkdir(parents=True, exist_ok=True)
    (opts.results_dir / "bench.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    from benchmarks.report import write_report

    write_report(result, opts.out, opts.results_dir)
    return result
