"""``simulsub transcribe AUDIO...``: speech to text with the chosen ASR (profile or model directory)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from app.asr import ASR_PROFILES, load_asr_engine, resolve_asr
from app.devices import add_device_argument, resolve_device
from app.errors import UserError
from app.textio import read_lines_per_audio
from streaming.metrics.runtime import real_time_factor


def add_parser(sub: Any) -> None:
    p = sub.add_parser("transcribe", help="transcribe audio files (one line per file, in order)")
    p.add_argument("audio", nargs="+", metavar="AUDIO",
                   help="audio files (wav, flac, mp3, ogg; any sample rate and channel count)")
    p.add_argument("--asr-profile", choices=ASR_PROFILES, default="default",
                   help="edge: the small paraformer-en; whisper: Whisper-base's AR decoder (LocalAgreement-2 when "
                        "streaming; hears people); default: Whisper-Paraformer once a head is bundled, else edge")
    p.add_argument("--model", "--asr-model", dest="model", metavar="DIR",
                   help="ASR directory, overriding --asr-profile: Whisper-Paraformer, Paraformer ONNX (ours or a "
                        "FunASR export) or CTranslate2 Whisper (default $SIMULSUB_ASR_MODEL, else the profile's)")
    p.add_argument("--reference-file", metavar="F", help="reference transcripts, one line per audio file: report WER")
    p.add_argument("--json", action="store_true", help="print one JSON object (texts, rtf, WER) as the last line")
    p.add_argument("--streaming", action="store_true",
                   help="decode as a live stream (chunks + look-ahead, CIF state carried) instead of offline")
    p.add_argument("--one-pass", action="store_true",
                   help="streaming: the final hypothesis from the chunk encodings too (default: a second, offline "
                        "pass over each segment gives the final, as FunASR's 2pass mode)")
    p.add_argument("--chunk-ms", type=float, default=600.0, help="streaming chunk in ms (default 600)")
    p.add_argument("--lookahead-ms", type=float, default=300.0, help="streaming look-ahead in ms (default 300)")
    p.add_argument("--float", dest="quantized", action="store_false",
                   help="use model.onnx instead of the int8 model_quant.onnx")
    p.add_argument("--greedy", action="store_true",
                   help="argmax per token slot: no LM fusion, no CTC rescoring (what FunASR's runtime does)")
    p.add_argument("--lm-weight", type=float, metavar="W",
                   help="LM fusion weight (default: the model's config.yaml → simulsub.decoding; 0 = no LM)")
    p.add_argument("--beam", type=int, default=1, help="whisper (AR) profile: beam size (default 1, greedy)")
    p.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    add_device_argument(p)
    p.set_defaults(run=run)


def decoding_options(model_dir: Path | None, *, greedy: bool, lm_weight: float | None) -> Any:
    """The directory's decoding settings with the command line's overrides (None: keep the directory's)."""
    from dataclasses import replace

    from models.asr.decoding import DecodeOptions
    from models.asr.runtime import ModelConfig, read_config

    if greedy:
        return DecodeOptions.greedy()
    if lm_weight is None or model_dir is None:
        return None
    return replace(ModelConfig.from_yaml(read_config(model_dir)).decoding, lm_weight=lm_weight)


def run(args: argparse.Namespace) -> int:
    from models.asr.audio import AudioError, load_audio
    from models.asr.runtime import AsrRunError, ModelDirError
    from models.asr.streaming import stream_audio

    for a in args.audio:
        if not Path(a).is_file():
            raise UserError(f"audio file {a} does not exist")
    refs = None
    if args.reference_file:
        refs = read_lines_per_audio(args.reference_file, len(args.audio), what="reference file")
    if args.threads < 1 or args.chunk_ms <= 0 or args.lookahead_ms < 0:
        raise UserError("--threads must be ≥ 1, --chunk-ms > 0 and --lookahead-ms ≥ 0")
    device = resolve_device(args.compute_device)
    if args.lm_weight is not None and args.lm_weight < 0:
        raise UserError("--lm-weight must be ≥ 0")
    if args.beam < 1 or args.beam > 64:
        raise UserError("--beam must be between 1 and 64")
    choice = resolve_asr(args.asr_profile, args.model)
    try:
        decoding = decoding_options(choice.model_dir, greedy=args.greedy, lm_weight=args.lm_weight)
    except ValueError as e:
        raise UserError(f"cannot load ASR model: {e}") from None
    engine = load_asr_engine(choice, threads=args.threads, device=device, quantized=args.quantized,
                             decoding=decoding, beam=args.beam)
    recognizer = None
    if args.streaming:
        recognizer = engine.recognizer(chunk_ms=args.chunk_ms, lookahead_ms=args.lookahead_ms,
                                       two_pass=not args.one_pass)
    texts: list[str] = []
    audio_s = compute_s = 0.0
    for a in args.audio:
        try:
            audio = load_audio(a, target_rate=engine.sample_rate)
        except AudioError as e:
            raise UserError(str(e)) from None
        t0 = time.perf_counter()
        try:
            if recognizer is not None:
                _, final = stream_audio(recognizer, audio)
                text = final.text
            else:
                text = engine.transcribe(audio)
        except (AsrRunError, ModelDirError) as e:  # a streaming half named in config.yaml may be missing
            raise UserError(f"{a}: {e}") from None
        compute_s += time.perf_counter() - t0
        audio_s += audio.size / engine.sample_rate
        texts.append(text)
        print(text, flush=True)
    mode = ("streaming one-pass" if args.one_pass else "streaming two-pass") if args.streaming else "offline"
    result: dict[str, Any] = {"texts": texts, "rtf": round(real_time_factor(compute_s, audio_s) or 0.0, 5),
                              "audio_s": round(audio_s, 3), "mode": mode,
                              "asr": engine.name, "decoding": engine.decoding_summary}
    if refs is not None:
        from streaming.metrics.quality import word_error_rate

        try:
            result["WER"] = round(word_error_rate(texts, refs), 2)
        except ValueError as e:
            raise UserError(f"cannot compute WER: {e}") from None
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    elif refs is not None:
        print(f"WER {result['WER']:.2f}  RTF {result['rtf']:.4f}", file=sys.stderr)
    return 0
