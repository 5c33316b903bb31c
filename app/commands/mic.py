"""``simulsub mic``: live translated captions from a microphone (or any input device, e.g. a call's loopback)."""

from __future__ import annotations

import argparse
import itertools
import sys
from typing import Any

from app.audio_sources import list_input_devices, microphone_source, parse_device
from app.outputs import check_output_path
from app.report import print_summary
from app.sinks import CaptionView, PipelineOutputs, SubtitleFiles
from app.speech_session import SpeechModels, add_speech_arguments, speech_config


def add_parser(sub: Any) -> None:
    p = sub.add_parser("mic", help="live captions from a microphone (Ctrl-C to stop)")
    add_speech_arguments(p, device_flag="--compute-device")
    p.add_argument("--device", help="input device name or index (default: the system's default input); "
                                    "`python -m sounddevice` lists them")
    p.add_argument("--list-devices", action="store_true", help="list the input devices and exit")
    p.add_argument("--srt", metavar="OUT.srt", help="also write SRT subtitles as segments become final")
    p.add_argument("--vtt", metavar="OUT.vtt", help="also write WebVTT subtitles as segments become final")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.list_devices:
        print(list_input_devices())
        return 0
    for option, value in (("--srt", args.srt), ("--vtt", args.vtt)):
        if value:
            check_output_path(value, option)
    models = SpeechModels(speech_config(args))
    pipe = models.pipeline()
    source = microphone_source(parse_device(args.device))
    first = next(source)  # opens the device: a missing or busy device fails here, before any caption
    subs = SubtitleFiles.open(args.srt, args.vtt)
    outputs = PipelineOutputs(pipe, view=CaptionView(sys.stdout), subtitles=subs)
    print("listening… (Ctrl-C to stop)", flush=True)
    try:
        for chunk in itertools.chain([first], source):
            outputs.feed(chunk.samples)
    except KeyboardInterrupt:
        pass
    finally:
        outputs.finish()
        subs.commit()
    print_summary("mic", {"segments": len(pipe.segments), "audio_s": pipe.audio_ms / 1000.0})
    return 0
