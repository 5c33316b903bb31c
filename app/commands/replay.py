"""``simulsub replay AUDIO...``: recorded speech through the live cascade (VAD → ASR → policy), scored.

Each file is streamed in 100 ms blocks (as fast as possible on a simulated clock, or in real time with
``--realtime``). The terminal shows the live caption (stable words plain, the revisable tail dimmed) when it is
a terminal and one line per final segment otherwise; SRT/VTT cues are appended as segments become final; the
instances log holds one SimulEval-style record per reference sentence (delays in ms; long-form files are
re-segmented onto the reference sentences, see ``streaming.resegment``). With ``--json`` the last line of
stdout is one JSON object with ``n, BLEU, WER, AL, LAAL, AL_CA, LAAL_CA, NE, rtf`` (and more).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from app.audio_sources import file_source, paced
from app.errors import UserError
from app.outputs import AtomicTextFile, check_output_path
from app.report import json_ready, print_summary
from app.speech_session import SpeechModels, add_speech_arguments, speech_config
from app.textio import read_lines_per_audio
from streaming.instance import InstanceRecord, score_instances
from streaming.resegment import TimedWord, attach_segment_stats, stream_instances
from streaming.speech_pipeline import CaptionEvent, SegmentResult, SpeechPipeline
from streaming.subtitles import VTT_HEADER, segment_cues, srt_block, vtt_block

DIM, RESET = "\x1b[2m", "\x1b[0m"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("replay", help="replay recorded speech through the live cascade and score it")
    p.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files (any format soundfile reads)")
    add_speech_arguments(p)
    p.add_argument("--reference-file", metavar="F", help="reference translations, one line per audio file")
    p.add_argument("--transcript-file", metavar="F", help="source transcripts, one line per audio file (WER)")
    p.add_argument("--sentence-times", metavar="F",
                   help="JSON lines, one per audio file: [[start_ms, end_ms], ...] of its reference sentences "
                        "(long-form latency; estimated from the VAD segments when absent)")
    p.add_argument("--realtime", action="store_true", help="feed the audio at real-time pace")
    p.add_argument("--log", metavar="OUT.jsonl", help="write the SimulEval-style instances log here")
    p.add_argument("--srt", metavar="OUT.srt", help="write SRT subtitles (several files: OUT-<name>.srt)")
    p.add_argument("--vtt", metavar="OUT.vtt", help="write WebVTT subtitles (several files: OUT-<name>.vtt)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the scores as the last line")
    p.set_defaults(run=run)


def _lines(path: str | None, count: int, what: str) -> list[str] | None:
    return None if path is None else read_lines_per_audio(path, count, what=what)


def _sentence_times(path: str | None, count: int) -> list[list[tuple[float, float]]] | None:
    lines = _lines(path, count, "sentence-times file")
    if lines is None:
        return None
    try:
        return [[(float(a), float(b)) for a, b in json.loads(x)] for x in lines]
    except (ValueError, TypeError) as e:
        raise UserError(f"sentence-times file {path}: each line must be a JSON list of [start_ms, end_ms]: {e}"
                        ) from None


def _output_path(option: str | None, audio: Path, several: bool) -> Path | None:
    if option is None:
        return None
    out = Path(option)
    return out.with_name(f"{out.stem}-{audio.stem}{out.suffix}") if several else out


class SubtitleFiles:
    """SRT/VTT files of one audio file, appended (and flushed) segment by segment; written as ``*.partial``
    and moved into place by :meth:`commit` (a failed replay never truncates an existing file)."""

    def __init__(self, srt: Path | None, vtt: Path | None) -> None:
        self.srt = AtomicTextFile(srt, "--srt") if srt else None
        self.vtt = AtomicTextFile(vtt, "--vtt") if vtt else None
        if self.vtt:
            self.vtt.write(VTT_HEADER)
        self.count = 0

    def add(self, seg: SegmentResult) -> None:
        for cue in segment_cues(seg.record.prediction, seg.start_ms, seg.end_ms):
            self.count += 1
            for f, block in ((self.srt, srt_block(self.count, cue)), (self.vtt, vtt_block(cue))):
                if f:
                    f.write(block)
                    f.flush()

    def commit(self) -> None:
        for f in (self.srt, self.vtt):
            if f:
                f.commit()

    def abort(self) -> list[Path]:
        """Leave the final paths untouched; returns the partial files kept."""
        return [k for f in (self.srt, self.vtt) if f and (k := f.abort()) is not None]


class LiveView:
    """The caption on a terminal: stable words, then the revisable tail dimmed; finals on their own line."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()

    def show(self, e: CaptionEvent) -> None:
        if e.type == "final":
            if self.tty:
                self.out.write("\r\x1b[2K")
            self.out.write(f"[{e.start_ms / 1000:7.2f}s → {e.end_ms / 1000:7.2f}s] {e.target}\n")
        elif self.tty:
            words = e.target.split()
            stable, tail = " ".join(words[: e.stable]), " ".join(words[e.stable :])
            self.out.write(f"\r\x1b[2K{stable} {DIM}{tail}{RESET}")
        self.out.flush()


def timed_words(segments: list[SegmentResult]) -> list[TimedWord]:
    """Every final word of a stream with its stream-time delay and computation-aware time (ms)."""
    out = []
    for seg in segments:
        rec = seg.record
        elapsed = rec.elapsed or rec.delays
        for w, d, e in zip(rec.prediction.split(), rec.delays, elapsed, strict=True):
            out.append(TimedWord(w, seg.start_ms + d, seg.start_ms + e, seg.start_ms, seg.end_ms))
    return out


def replay_file(pipe: SpeechPipeline, audio: Path, *, realtime: bool, view: LiveView,
                subtitles: SubtitleFiles) -> tuple[list[SegmentResult], float]:
    """Stream one file through ``pipe``; returns its segments and its duration (ms)."""
    pipe.reset()
    chunks = file_source(audio)
    done = 0
    for chunk in paced(chunks) if realtime else chunks:
        for e in pipe.feed(chunk.samples):
            view.show(e)
        while done < len(pipe.segments):
            subtitles.add(pipe.segments[done])
            done += 1
    for e in pipe.finish():
        view.show(e)
    for seg in pipe.segments[done:]:
        subtitles.add(seg)
    return list(pipe.segments), pipe.audio_ms


def run(args: argparse.Namespace) -> int:
    audio = [Path(a) for a in args.audio]
    for a in audio:
        if not a.is_file():
            raise UserError(f"audio file {a} does not exist")
    refs = _lines(args.reference_file, len(audio), "reference file")
    transcripts = _lines(args.transcript_file, len(audio), "transcript file")
    times = _sentence_times(args.sentence_times, len(audio))
    several = len(audio) > 1
    for a in audio:  # every output path is checked before any work
        for option, value in (("--srt", args.srt), ("--vtt", args.vtt)):
            if (out := _output_path(value, a, several)) is not None:
                check_output_path(out, option)
    log = AtomicTextFile(args.log, "--log") if args.log else None
    try:
        scores = _replay_all(args, audio, refs, transcripts, times, log)
    except BaseException as e:
        kept = log.abort() if log else None
        if isinstance(e, UserError) and kept is not None:
            raise UserError(f"{e} (the instances log so far is in {kept}; {args.log} was left as it was)"
                            ) from None
        raise
    if log:
        log.commit()
    if args.json:
        print(json.dumps(json_ready(scores), ensure_ascii=False))
    else:
        print_summary(f"replay: {len(audio)} file(s), policy {args.policy}", scores)
    return 0


def _replay_all(args: argparse.Namespace, audio: list[Path], refs: list[str] | None,
                transcripts: list[str] | None, times: list[list[tuple[float, float]]] | None,
                log: AtomicTextFile | None) -> dict[str, object]:
    models = SpeechModels(speech_config(args))
    pipe = models.pipeline()
    view = LiveView(sys.stdout if not args.json else sys.stderr)
    instances: list[InstanceRecord] = []
    hyps_src: list[str] = []
    total_ms = 0.0
    t_wall = time.perf_counter()
    several = len(audio) > 1
    for i, a in enumerate(audio):
        subs = SubtitleFiles(_output_path(args.srt, a, several), _output_path(args.vtt, a, several))
        try:
            segments, duration = replay_file(pipe, a, realtime=args.realtime, view=view, subtitles=subs)
        except BaseException:
            subs.abort()
            raise
        subs.commit()
        total_ms += duration
        words = timed_words(segments)
        hyps_src.append(" ".join(s.source for s in segments))
        if refs is not None:
            try:
                recs = stream_instances(words, refs[i], duration, index=i,
                                        sentence_times=times[i] if times else None)
            except ValueError as e:
                raise UserError(f"{a}: {e}") from None
        else:
            recs = [InstanceRecord(index=i, prediction=" ".join(w.text for w in words),
                                   delays=[w.delay for w in words], elapsed=[w.elapsed for w in words],
                                   source_length=max(duration, 1.0))]
        attach_segment_stats(recs, [(s.start_ms, s.end_ms, s.record) for s in segments], duration)
        for j, r in enumerate(recs):
            r.extra["audio"] = str(a)
            if j == 0:  # the file's segments and ASR transcript go with its first instance
                r.source = hyps_src[-1]
                r.extra["segments"] = [{"start_ms": round(s.start_ms, 1), "end_ms": round(s.end_ms, 1),
                                        "source": s.source, "prediction": s.record.prediction}
                                       for s in segments]
            if log:
                log.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")
                log.flush()
        instances.extend(recs)
    wall_ms = (time.perf_counter() - t_wall) * 1000.0
    scores: dict[str, object] = dict(score_instances(instances))  # NE and rtf from the records: as `score` does
    scores.setdefault("rtf", 0.0)  # no audio at all: nothing was computed
    scores["wall_rtf"] = wall_ms / max(total_ms, 1.0)
    scores["audio_s"] = total_ms / 1000.0
    scores["files"] = len(audio)
    if transcripts is not None:
        from streaming.metrics.quality import word_error_rate

        scores["WER"] = word_error_rate(hyps_src, transcripts)
    return scores
