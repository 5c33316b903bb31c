"""Speech-to-translation evaluation of several policies on the same recordings (ASR run once, replayed).

    .venv/bin/python -m benchmarks.speech_eval AUDIO_LIST --references F --transcripts F
        [--policies reta,fretna,waitk,llm] [--sentence-times F] [--limit N] [--out benchmarks/results/speech_eval]

Every recording goes through the product's cascade (file decoding, silero VAD, streaming Paraformer, policy) as
``simulsub replay`` runs it. The first policy runs the ASR and records its hypotheses; the others get exactly
those hypotheses back with the ASR compute time measured on the first run (``streaming.asr_replay``), so the
policies are compared on identical transcripts and the ASR is not paid once per policy. Scores per policy:
BLEU, ASR WER, AL / LAAL (ms) and their computation-aware variants, NE and RTF; long-form files are scored by
re-segmenting onto their reference sentences (``streaming.resegment``), as ``simulsub replay`` does.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from app.policies import PolicyConfig
from app.sinks import stream_file
from app.speech_session import SpeechConfig, SpeechModels
from streaming.asr_replay import AsrRecording, RecordingRecognizer, ReplayRecognizer
from streaming.events import SegmentResult
from streaming.longform import LongFormScorer
from streaming.speech_pipeline import SpeechPipeline

SCORES = ("BLEU", "WER", "AL", "LAAL", "AL_CA", "LAAL_CA", "NE", "rtf")


@dataclass(frozen=True)
class SpeechSet:
    """Recordings with one reference translation and one transcript per file (several sentences for long-form);
    ``sentence_times``: per file, (start, end) ms of each reference sentence, or None (estimated)."""

    name: str
    audio: list[Path]
    references: list[str]
    transcripts: list[str]
    sentence_times: list[list[tuple[float, float]]] | None = None

    def __post_init__(self) -> None:
        n = len(self.audio)
        if len(self.references) != n or len(self.transcripts) != n:
            raise ValueError(f"{self.name}: {n} files, {len(self.references)} references, "
                             f"{len(self.transcripts)} transcripts")

    def head(self, n: int) -> SpeechSet:
        times = self.sentence_times[:n] if self.sentence_times is not None else None
        return SpeechSet(self.name, self.audio[:n], self.references[:n], self.transcripts[:n], times)


def run_file(pipe: SpeechPipeline, path: Path) -> tuple[list[SegmentResult], float]:
    """Stream one file through ``pipe`` as fast as possible; its segments and duration (ms)."""
    return stream_file(pipe, path)


def evaluate(models: SpeechModels, systems: list[tuple[str, PolicyConfig]], data: SpeechSet, *,
             progress: bool = True) -> dict[str, dict[str, float]]:
    """Scores per system label (see :data:`SCORES`, and :meth:`streaming.longform.LongFormScorer.scores`) on
    ``data``, each file re-segmented onto its reference sentences as ``simulsub replay`` scores it."""
    scorers = {label: LongFormScorer() for label, _ in systems}
    for i, path in enumerate(tqdm(data.audio, desc=f"speech {data.name}", unit="file", disable=not progress)):
        recording = AsrRecording()
        for j, (label, cfg) in enumerate(systems):
            recognizer = RecordingRecognizer(models.recognizer(), recording) if j == 0 else ReplayRecognizer(recording)
            pipe = models.pipeline(cfg, recognizer=recognizer)
            segments, duration = run_file(pipe, path)
            times = data.sentence_times[i] if data.sentence_times is not None else None
            scorers[label].add(segments, duration, reference=data.references[i], sentence_times=times)
    return {label: scorer.scores(data.transcripts) for label, scorer in scorers.items()}


def read_set(name: str, audio_list: Path, references: Path, transcripts: Path,
             sentence_times: Path | None = None) -> SpeechSet:
    """A set from a list of audio paths (one per line, relative to the list's folder or absolute) and two text
    files with one line per audio file; ``sentence_times``: JSON lines of [[start_ms, end_ms], …] per file."""
    def lines(p: Path) -> list[str]:
        return p.read_text(encoding="utf-8").splitlines()

    base = audio_list.parent
    audio = [Path(x) if Path(x).is_absolute() or Path(x).exists() else base / x for x in lines(audio_list) if x]
    times = None
    if sentence_times is not None:
        times = [[(float(a), float(b)) for a, b in json.loads(x)] for x in lines(sentence_times) if x.strip()]
    return SpeechSet(name, audio, lines(references)[: len(audio)], lines(transcripts)[: len(audio)], times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("audio_list", type=Path)
    ap.add_argument("--references", type=Path, required=True)
    ap.add_argument("--transcripts", type=Path, required=True)
    ap.add_argument("--sentence-times", type=Path)
    ap.add_argument("--policies", default="reta,fretna,waitk,llm")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/speech_eval"))
    args = ap.parse_args()
    data = read_set(args.audio_list.stem, args.audio_list, args.references, args.transcripts, args.sentence_times)
    if args.limit:
        data = data.head(args.limit)
    systems = [(p, PolicyConfig(name=p)) for p in args.policies.split(",") if p]
    models = SpeechModels(SpeechConfig(policy=systems[0][1]))
    result = evaluate(models, systems, data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print("| system | " + " | ".join(SCORES) + " |")
    for label, s in result.items():
        print(f"| {label} | " + " | ".join(f"{s.get(k, float('nan')):.3f}" for k in SCORES) + " |")


if __name__ == "__main__":
    main()
