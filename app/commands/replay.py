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
from typing import Any

from app.errors import UserError
from app.outputs import check_output_path
from app.report import json_ready, print_summary
from app.sinks import CaptionView, JsonlLog, SubtitleFiles, stream_file
from app.speech_session import SpeechModels, add_speech_arguments, speech_config
from app.textio import read_lines_per_audio
from streaming.longform import LongFormScorer


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
    log = JsonlLog.open(args.log) if args.log else None
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
                log: JsonlLog | None) -> dict[str, float]:
    models = SpeechModels(speech_config(args))
    pipe = models.pipeline()
    view = CaptionView(sys.stdout if not args.json else sys.stderr)
    scorer = LongFormScorer()
    t_wall = time.perf_counter()
    several = len(audio) > 1
    for i, a in enumerate(audio):
        subs = SubtitleFiles.open(_output_path(args.srt, a, several), _output_path(args.vtt, a, several))
        try:
            segments, duration = stream_file(pipe, a, realtime=args.realtime, view=view, subtitles=subs)
        except BaseException:
            subs.abort()
            raise
        subs.commit()
        try:
            recs = scorer.add(segments, duration, reference=refs[i] if refs is not None else None,
                              sentence_times=times[i] if times else None)
        except ValueError as e:
            raise UserError(f"{a}: {e}") from None
        for j, r in enumerate(recs):
            r.extra["audio"] = str(a)
            if j == 0:  # the file's segments go with its first instance (as does its ASR transcript)
                r.extra["segments"] = [{"start_ms": round(s.start_ms, 1), "end_ms": round(s.end_ms, 1),
                                        "source": s.source, "prediction": s.record.prediction}
                                       for s in segments]
            if log:
                log.write(r.to_json())
    # NE and rtf from the records, as `simulsub score` computes them from the log
    return scorer.scores(transcripts, wall_ms=(time.perf_counter() - t_wall) * 1000.0)
