"""``simulsub mic``: live translated captions from a microphone (or any input device, e.g. a call's loopback)."""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any

from app.audio_sources import microphone_source
from app.commands.replay import LiveView, SubtitleFiles
from app.errors import UserError
from app.outputs import check_output_path
from app.report import print_summary
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


def _device(value: str | None) -> str | int | None:
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def list_devices() -> str:
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:
        raise UserError(f"listing devices needs sounddevice and PortAudio ({e}): pip install sounddevice and "
                        "apt-get install libportaudio2") from None
    devices = [(i, d) for i, d in enumerate(sd.query_devices()) if d.get("max_input_channels", 0) > 0]
    if not devices:
        return "no input devices found"
    return "\n".join(f"{i}: {d['name']} ({d['max_input_channels']} ch, {d['default_samplerate']:.0f} Hz)"
                     for i, d in devices)


def run(args: argparse.Namespace) -> int:
    if args.list_devices:
        print(list_devices())
        return 0
    for option, value in (("--srt", args.srt), ("--vtt", args.vtt)):
        if value:
            check_output_path(value, option)
    models = SpeechModels(speech_config(args))
    pipe = models.pipeline()
    source = microphone_source(_device(args.device))
    first = next(source)  # opens the device: a missing or busy device fails here, before any caption
    view = LiveView(sys.stdout)
    subs = SubtitleFiles(Path(args.srt) if args.srt else None, Path(args.vtt) if args.vtt else None)
    done = 0
    print("listening… (Ctrl-C to stop)", flush=True)
    try:
        for chunk in itertools.chain([first], source):
            for e in pipe.feed(chunk.samples):
                view.show(e)
            while done < len(pipe.segments):
                subs.add(pipe.segments[done])
                done += 1
    except KeyboardInterrupt:
        pass
    finally:
        for e in pipe.finish():
            view.show(e)
        for seg in pipe.segments[done:]:
            subs.add(seg)
        subs.commit()
    print_summary("mic", {"segments": len(pipe.segments), "audio_s": pipe.audio_ms / 1000.0})
    return 0
