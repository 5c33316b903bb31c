"""Build the speech cascade (silero VAD + streaming ASR + a policy) for the drivers.

``replay``, ``mic``, the server and the web page all get their :class:`streaming.speech_pipeline.SpeechPipeline`
from here, so they run the same models with the same options. Loading errors become :class:`UserError`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from app.asr import ASR_PROFILES, AsrEngine, load_asr_engine, resolve_asr
from app.batching import BatchedTranslator, BatchingOptions
from app.devices import add_device_argument, resolve_device
from app.errors import UserError, check_range
from app.policies import (
    LATENCY_LEVELS,
    ModelCache,
    PolicyConfig,
    build_policy,
    policy_config_from_args,
    policy_names,
)
from app.run_profiles import add_profile_arguments
from streaming.speech_pipeline import PipelineOptions, Recognizer, SpeechPipeline
from streaming.vad import VadOptions


@dataclass(frozen=True)
class SpeechConfig:
    """Everything that picks and tunes the cascade's models (ms of 16 kHz audio where timed)."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    asr_model: Path | None = None
    asr_profile: str = "default"  # app.asr.ASR_PROFILES: default (Whisper-Paraformer), edge, whisper (AR)
    asr_quantized: bool = True
    chunk_ms: float = 600.0
    lookahead_ms: float = 300.0
    vad_threshold: float = 0.5
    min_silence_ms: float = 500.0
    min_speech_ms: float = 250.0
    pre_roll_ms: float = 300.0
    max_segment_ms: float = 20000.0
    threads: int = 1
    device: str = "cpu"  # resolved compute device of the ASR and translation models ("cpu" or "cuda")


def add_speech_arguments(p: argparse.ArgumentParser, *, device_flag: str = "--device") -> None:
    """The options every speech driver shares (policy, models, VAD, streaming, compute device).

    ``device_flag``: the name of the compute-device option (``--compute-device`` where ``--device`` already
    picks an audio input device).
    """
    p.add_argument("--policy", choices=policy_names(), default="reta", help="simultaneous policy (default reta)")
    p.add_argument("--model", metavar="DIR", help="translation model directory (default: the policy's bundled one)")
    p.add_argument("--asr-profile", choices=ASR_PROFILES, default="default",
                   help="edge: the small paraformer-en; whisper: Whisper-base's AR decoder with LocalAgreement-2 "
                        "(hears people); default: Whisper-Paraformer once a head is bundled, else edge")
    p.add_argument("--asr-model", metavar="DIR",
                   help="ASR directory, overriding --asr-profile: Whisper-Paraformer, Paraformer ONNX (ours or a "
                        "FunASR export) or CTranslate2 Whisper (default $SIMULSUB_ASR_MODEL, else the profile's)")
    p.add_argument("--beam", type=int, default=4, help="reta/waitk(test-time): beam size (default 4)")
    p.add_argument("--k", type=int, default=3, help="waitk: source words read before the first target word (3)")
    p.add_argument("--latency", choices=LATENCY_LEVELS, default="medium",
                   help="llm: the latency the model is asked for (default medium)")
    p.add_argument("--llm-model", metavar="DIR",
                   help="llm: a Hugging Face causal-LM directory with <|end-of-read|>/<|end-of-write|> "
                        "(default models/pretrained/llm-en-de)")
    p.add_argument("--mask-k", type=int, default=0, help="hide the last K words of non-final captions (default 0)")
    p.add_argument("--prefix-bias", choices=("off", "forced", "biased"), default="off",
                   help="reta: reuse of the displayed prefix (default off)")
    p.add_argument("--chunk-ms", type=float, default=600.0, help="ASR streaming chunk in ms (default 600)")
    p.add_argument("--lookahead-ms", type=float, default=300.0, help="ASR look-ahead in ms (default 300)")
    p.add_argument("--vad-threshold", type=float, default=0.5, help="speech probability threshold (default 0.5)")
    p.add_argument("--min-silence-ms", type=float, default=500.0,
                   help="a pause this long ends an utterance (default 500)")
    p.add_argument("--max-segment-ms", type=float, default=20000.0,
                   help="cut continuous speech into utterances of at most this long (default 20000)")
    p.add_argument("--threads", type=int, default=1, help="inference threads per model (default 1)")
    add_profile_arguments(p)
    add_device_argument(p, device_flag)


MAX_BEAM = 64  # a beam of 10⁵ would allocate gigabytes before producing a word


def speech_config(args: argparse.Namespace) -> SpeechConfig:
    """The options of :func:`add_speech_arguments`, each checked against its valid range."""
    check_range("--threads", args.threads, 1, 256)
    check_range("--beam", args.beam, 1, MAX_BEAM)
    check_range("--k", args.k, 1, 64)
    check_range("--mask-k", args.mask_k, 0, 50)
    check_range("--chunk-ms", args.chunk_ms, 0, 10000, lo_open=True)
    check_range("--lookahead-ms", args.lookahead_ms, 0, 10000)
    check_range("--vad-threshold", args.vad_threshold, 0, 1, lo_open=True)
    check_range("--min-silence-ms", args.min_silence_ms, 0, 60000)
    check_range("--max-segment-ms", args.max_segment_ms, 0, 600000, lo_open=True)
    device = resolve_device(args.compute_device)
    policy = policy_config_from_args(args, device=device)
    return SpeechConfig(policy=policy, asr_model=Path(args.asr_model) if args.asr_model else None,
                        asr_profile=args.asr_profile,
                        chunk_ms=args.chunk_ms, lookahead_ms=args.lookahead_ms, vad_threshold=args.vad_threshold,
                        min_silence_ms=args.min_silence_ms, max_segment_ms=args.max_segment_ms, threads=args.threads,
                        device=device)


def load_asr(cfg: SpeechConfig) -> AsrEngine:
    """The ASR engine the config names (profile, or ``asr_model`` / ``$SIMULSUB_ASR_MODEL``)."""
    return load_asr_engine(resolve_asr(cfg.asr_profile, cfg.asr_model), threads=cfg.threads, device=cfg.device,
                           quantized=cfg.asr_quantized)


class SpeechModels:
    """Loaded once and shared by every pipeline made from it: ASR, VAD and translation models.

    With ``batching`` (a server's many streams), the CTranslate2 translations of all pipelines made from it run as
    cross-stream batches (:mod:`app.batching`); results are the same as without. ``translators`` replaces the
    cache the policies take their translation models from (e.g. :class:`app.server.ray_serve.RemoteModelCache`,
    whose models run in other processes).
    """

    def __init__(self, cfg: SpeechConfig, *, batching: BatchingOptions | None = None,
                 translators: ModelCache | None = None) -> None:
        from models.vad.silero import SileroVad, VadModelError

        self.cfg = cfg
        self.batching = batching
        self.asr = load_asr(cfg)
        self.translators = (translators if translators is not None
                            else ModelCache(wrap=self._batched if batching is not None else None))
        try:
            self.vad = SileroVad(threads=1)
        except VadModelError as e:
            raise UserError(str(e)) from None
        build_policy(cfg.policy, self.translators)  # load the default policy's model now: errors surface early

    def _batched(self, key: tuple[object, ...], model: object) -> object:
        """CTranslate2 translators become batching proxies (the other models run per call)."""
        return BatchedTranslator(model, self.batching) if key[0] == "ct2" else model

    def batch_stats(self) -> dict[str, dict[str, object]]:
        """What each batcher did so far (empty without batching)."""
        stats: dict[str, dict[str, object]] = {}
        for i, m in enumerate(m for m in self.translators.values() if isinstance(m, BatchedTranslator)):
            stats["translation" if i == 0 else f"translation{i + 1}"] = m.batcher.stats.to_json()
        return stats

    def close(self) -> None:
        """Stop the batching threads (no-op without batching)."""
        for m in self.translators.values():
            if isinstance(m, BatchedTranslator):
                m.close()

    def recognizer(self) -> Recognizer:
        """A new streaming recogniser over the shared ASR model (chunk and look-ahead from the config)."""
        return self.asr.recognizer(chunk_ms=self.cfg.chunk_ms, lookahead_ms=self.cfg.lookahead_ms)

    def pipeline(self, policy: PolicyConfig | None = None, *, recognizer: Recognizer | None = None) -> SpeechPipeline:
        """A new pipeline for one stream (its own VAD, recogniser and policy state); ``policy`` overrides the
        default policy (its model is loaded once into the shared cache); ``recognizer`` replaces the streaming
        recogniser (e.g. a :class:`streaming.asr_replay.ReplayRecognizer`)."""
        from models.vad.silero import FRAME_SAMPLES

        cfg = self.cfg
        pcfg = policy or cfg.policy
        vad = self.vad.fork()
        recognizer = recognizer if recognizer is not None else self.recognizer()
        options = PipelineOptions(
            vad=VadOptions(threshold=cfg.vad_threshold, min_silence_ms=cfg.min_silence_ms,
                           min_speech_ms=cfg.min_speech_ms),
            pre_roll_ms=cfg.pre_roll_ms, max_segment_ms=cfg.max_segment_ms, mask_k=pcfg.mask_k,
        )
        try:
            return SpeechPipeline(vad.prob, FRAME_SAMPLES, recognizer, build_policy(pcfg, self.translators),
                                  options, reset_vad=vad.reset)
        except ValueError as e:
            raise UserError(str(e)) from None
