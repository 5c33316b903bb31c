"""Which ASR runs: profiles, model-directory detection and loading, one interface for every driver.

Profiles (``--asr-profile``):

- ``default``: Whisper-Paraformer (``models/pretrained/whisper-paraformer-en``: a CIF + parallel-decoder head on
  the frozen Whisper-base encoder) when that directory is there; until a trained head is bundled (``simulsub train
  whisper-paraformer --export``), the ``edge`` model;
- ``edge``: the small all-ONNX Paraformer (``models/pretrained/paraformer-en``, 6.6 M parameters, trained on
  synthetic voices only): cheapest, poor on real voices;
- ``whisper``: Whisper-base's own autoregressive decoder with LocalAgreement-2 streaming: hears people today.

``--asr-model DIR`` (or ``$SIMULSUB_ASR_MODEL``) overrides the profile; its kind is read from the directory: a
Whisper-Paraformer directory, a CTranslate2 Whisper directory (``model.bin`` + Whisper's ``config.json``: the AR
comparator over that model), or any other Paraformer ONNX directory (ours or a FunASR export).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import UserError
from app.model_store import CATALOG
from app.profiles import PRETRAINED_DIR, missing_model_hint, resolve_model_dir

ASR_PROFILES = ("default", "edge", "whisper")
DEFAULT_ASR_DIR = PRETRAINED_DIR / "whisper-paraformer-en"
EDGE_ASR_DIR = PRETRAINED_DIR / "paraformer-en"
KINDS = ("whisper-paraformer", "paraformer", "whisper-ar")


@dataclass(frozen=True)
class AsrChoice:
    """A resolved ASR: its ``kind`` (one of :data:`KINDS`) and directory (None: Whisper-base from the packages)."""

    kind: str
    model_dir: Path | None
    profile: str


def is_ct2_whisper_dir(path: Path) -> bool:
    cfg = path / "config.json"
    if not (path / "model.bin").is_file() or not cfg.is_file():
        return False
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and ("alignment_heads" in data or "lang_ids" in data)


def resolve_asr(profile: str = "default", model_dir: str | Path | None = None) -> AsrChoice:
    """The ASR a command should load: ``model_dir`` / ``$SIMULSUB_ASR_MODEL`` when given, else the profile's."""
    if profile not in ASR_PROFILES:
        raise UserError(f"unknown ASR profile {profile!r}: choose one of {', '.join(ASR_PROFILES)}")
    given = model_dir or os.environ.get("SIMULSUB_ASR_MODEL")
    if given:
        path = resolve_model_dir(given)
        if not path.is_dir():
            raise UserError(f"cannot load ASR model: {path} does not exist (pass --asr-model DIR: a "
                            "Whisper-Paraformer, Paraformer/FunASR or CTranslate2 Whisper directory, or the name "
                            f"of an installed model){missing_model_hint(given) if str(given) in CATALOG else ''}")
        from models.asr.wparaformer.runtime import is_whisper_paraformer_dir

        if is_whisper_paraformer_dir(path):
            return AsrChoice("whisper-paraformer", path, profile)
        if is_ct2_whisper_dir(path):
            return AsrChoice("whisper-ar", path, profile)
        return AsrChoice("paraformer", path, profile)
    if profile == "whisper":
        return AsrChoice("whisper-ar", None, profile)
    if profile == "default" and not (DEFAULT_ASR_DIR / "config.yaml").is_file():
        profile = "edge"  # no Whisper-Paraformer head bundled yet: the default stays the edge Paraformer
    path = DEFAULT_ASR_DIR if profile == "default" else EDGE_ASR_DIR
    if not path.is_dir():
        how = ("simulsub train whisper-paraformer --export" if profile == "default"
               else "simulsub train paraformer --export")
        raise UserError(f"cannot load ASR model: the bundled {profile} model {path} is missing (is this a full "
                        f"checkout? or train it with `{how}`)")
    return AsrChoice("whisper-paraformer" if profile == "default" else "paraformer", path, profile)


class AsrEngine:
    """A loaded ASR: offline ``transcribe`` and new streaming recognisers (the ``Recognizer`` protocol)."""

    def __init__(self, choice: AsrChoice, model: Any) -> None:
        self.choice = choice
        self.model = model

    @property
    def kind(self) -> str:
        return self.choice.kind

    @property
    def sample_rate(self) -> int:
        return int(self.model.sample_rate)

    @property
    def decoding_summary(self) -> str:
        return str(self.model.decoding_summary)

    @property
    def name(self) -> str:
        where = self.choice.model_dir.name if self.choice.model_dir else "whisper-base"
        return f"{self.kind} ({where})"

    def transcribe(self, audio: Any) -> str:
        return str(self.model.transcribe(audio))

    def recognizer(self, *, chunk_ms: float = 600.0, lookahead_ms: float = 300.0, two_pass: bool = True) -> Any:
        """A new streaming recogniser (one segment at a time); the AR comparator re-decodes every
        ``chunk_ms + lookahead_ms`` (it has no look-ahead of its own)."""
        if self.kind == "whisper-ar":
            from models.asr.wparaformer.whisper_ar import LocalAgreementOptions, LocalAgreementRecognizer

            return LocalAgreementRecognizer(self.model, LocalAgreementOptions(chunk_ms=chunk_ms + lookahead_ms))
        if self.kind == "whisper-paraformer":
            from models.asr.wparaformer.streaming import WhisperStreamingRecognizer, whisper_streaming_options

            return WhisperStreamingRecognizer(self.model, whisper_streaming_options(chunk_ms, lookahead_ms,
                                                                                    two_pass=two_pass))
        from models.asr.streaming import StreamingOptions, StreamingRecognizer

        return StreamingRecognizer(self.model, StreamingOptions(chunk_ms=chunk_ms, lookahead_ms=lookahead_ms,
                                                                two_pass=two_pass))


def load_asr_engine(choice: AsrChoice, *, threads: int = 1, device: str = "cpu", quantized: bool = True,
                    decoding: Any = None, beam: int = 1) -> AsrEngine:
    """Load ``choice``; every loading error becomes a :class:`UserError` that says what to do."""
    from app.devices import onnx_providers
    from models.asr.runtime import ModelDirError
    from models.asr.wparaformer.package import WhisperModelError

    # int8 weights on the CPU; on a GPU the fp32 graphs (CUDA has no fast int8 MatMulInteger)
    quantized = quantized and device == "cpu"
    try:
        if choice.kind == "whisper-ar":
            from models.asr.wparaformer.whisper_ar import WhisperAr

            return AsrEngine(choice, WhisperAr(choice.model_dir, device=device, threads=threads, beam=beam))
        if choice.kind == "whisper-paraformer":
            from models.asr.wparaformer.runtime import WhisperParaformer

            assert choice.model_dir is not None
            return AsrEngine(choice, WhisperParaformer(choice.model_dir, quantized=quantized, threads=threads,
                                                       providers=onnx_providers(device), decoding=decoding,
                                                       device=device))
        from models.asr.runtime import ParaformerOnnx

        assert choice.model_dir is not None
        return AsrEngine(choice, ParaformerOnnx(choice.model_dir, quantized=quantized, threads=threads,
                                                providers=onnx_providers(device), decoding=decoding))
    except (ModelDirError, WhisperModelError, ValueError) as e:
        raise UserError(f"cannot load ASR model: {e}") from None
