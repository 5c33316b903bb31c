"""Build a streaming policy from CLI/config options; loaded models are cached so sessions share them.

A :class:`ModelCache` holds every translation model loaded so far, keyed by what identifies it (kind, directory,
threads, options). Policies keep their own per-sentence state; the models behind them are shared: CTranslate2
and onnxruntime sessions may be called from several threads, and the wait-k runtime is forked (shared ONNX
sessions, private caches).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.devices import onnx_providers
from app.errors import UserError
from app.profiles import (
    DEFAULT_LLM_MODEL,
    DEFAULT_NAT_MODEL,
    DEFAULT_WAITK_MODEL,
    load_translator,
    resolve_model_dir,
)
from streaming.policies.llm import LATENCY_LEVELS
from streaming.policy import Policy

POLICY_NAMES = ("reta", "fretna", "waitk", "llm")


@dataclass(frozen=True)
class PolicyConfig:
    """What a driver needs to build a policy; ``mask_k`` is also applied by the caption display."""

    name: str = "reta"
    model: Path | None = None
    beam: int = 4
    mask_k: int = 0
    prefix_bias: str = "off"
    prefix_beta: float = 0.2
    threads: int = 1
    k: int = 3
    shortlist: bool = True  # fretna: score only each source's lexical shortlist when the model has one
    device: str = "cpu"  # "cpu" or "cuda", already resolved (app.devices.resolve_device)
    latency: str = "medium"  # llm: the latency prompt (low, medium, high)
    llm_model: Path | None = None  # llm: a Hugging Face causal-LM directory (default: the bundled one)
    source_lang: str | None = None  # a multilingual (M2M100/NLLB) model's languages; None: the model's default
    target_lang: str | None = None


class ModelCache:
    """Loaded translation models by key; thread-safe."""

    def __init__(self) -> None:
        self._models: dict[tuple[object, ...], Any] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...], load: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._models:
                self._models[key] = load()
            return self._models[key]

    def __len__(self) -> int:
        return len(self._models)


def build_policy(cfg: PolicyConfig, cache: ModelCache | None = None) -> Policy:
    """A fresh policy for ``cfg``; its model comes from ``cache`` when given (loaded there once)."""
    if cfg.mask_k < 0:
        raise UserError("--mask-k must be >= 0")
    if cfg.beam < 1:
        raise UserError("--beam must be >= 1")
    models = cache if cache is not None else ModelCache()
    if cfg.name == "reta":
        from streaming.policies.reta import RetaOptions, RetaPolicy

        try:
            options = RetaOptions(beam_size=cfg.beam, prefix=cfg.prefix_bias,  # type: ignore[arg-type]
                                  prefix_beta=cfg.prefix_beta, mask_k=cfg.mask_k)
        except ValueError as e:
            raise UserError(str(e)) from None
        translator = models.get(("ct2", cfg.model, cfg.threads, cfg.device, cfg.source_lang, cfg.target_lang),
                                lambda: _ct2(cfg, cfg.model))
        return RetaPolicy(translator, options)
    if cfg.name == "fretna":
        from streaming.policies.fretna import FretnaPolicy

        nat = models.get(("nat", cfg.model, cfg.threads, cfg.shortlist, cfg.device), lambda: _load_nat(cfg))
        return FretnaPolicy(nat, mask_k=cfg.mask_k)
    if cfg.name == "waitk":
        if cfg.k < 1:
            raise UserError("--k must be >= 1")
        return _waitk_policy(cfg, models)
    if cfg.name == "llm":
        return _llm_policy(cfg, models)
    raise UserError(f"unknown policy {cfg.name!r}; choose one of {', '.join(POLICY_NAMES)}")


def _load_nat(cfg: PolicyConfig) -> Any:
    from models.nat.runtime import ModelDirError, NatTranslator

    path = resolve_model_dir(cfg.model) if cfg.model else DEFAULT_NAT_MODEL
    if not path.is_dir():
        raise UserError(f"NAT model directory {path} does not exist (train one: simulsub distill && "
                        "simulsub train nat --export, or pass --model DIR)")
    try:
        return NatTranslator(path, threads=cfg.threads, use_shortlist=cfg.shortlist,
                             providers=onnx_providers(cfg.device))
    except ModelDirError as e:
        raise UserError(str(e)) from None


def _waitk_policy(cfg: PolicyConfig, models: ModelCache) -> Policy:
    """The trained incremental wait-k model when ``cfg.model`` is one (or, with no model given, the bundled one
    when present); test-time wait-k over a CTranslate2 model otherwise."""
    from models.waitk.runtime import WaitkModelDirError, WaitkOnnx, is_waitk_dir

    path = (resolve_model_dir(cfg.model) if cfg.model is not None
            else (DEFAULT_WAITK_MODEL if DEFAULT_WAITK_MODEL.is_dir() else None))
    if path is not None and is_waitk_dir(path):
        from streaming.policies.waitk import WaitkPolicy

        def load() -> WaitkOnnx:
            try:
                return WaitkOnnx(path, threads=cfg.threads, providers=onnx_providers(cfg.device))
            except WaitkModelDirError as e:
                raise UserError(str(e)) from None

        base: WaitkOnnx = models.get(("waitk", path, cfg.threads, cfg.device), load)
        return WaitkPolicy(base.fork(), cfg.k)
    from streaming.policies.waitk_offline import OfflineWaitkPolicy, WaitkOptions

    translator = models.get(("ct2", path, cfg.threads, cfg.device, cfg.source_lang, cfg.target_lang),
                            lambda: _ct2(cfg, path))
    return OfflineWaitkPolicy(translator, WaitkOptions(k=cfg.k, beam_size=cfg.beam))


def _ct2(cfg: PolicyConfig, path: Path | None) -> Any:
    return load_translator(path, threads=cfg.threads, device=cfg.device, source_lang=cfg.source_lang,
                           target_lang=cfg.target_lang)


def _llm_policy(cfg: PolicyConfig, models: ModelCache) -> Policy:
    """EAST-style read/write with a causal LM (its own sequence and KV cache over shared weights)."""
    if cfg.latency not in LATENCY_LEVELS:
        raise UserError(f"--latency must be one of {', '.join(LATENCY_LEVELS)}")
    path = resolve_model_dir(cfg.llm_model) if cfg.llm_model else DEFAULT_LLM_MODEL
    if not path.is_dir():
        raise UserError(f"LLM directory {path} does not exist (train one: simulsub train llm-simt --export, or pass "
                        "--llm-model DIR, a Hugging Face causal LM with <|end-of-read|> and <|end-of-write|>)")
    from models.llm.loader import AnyInterleavedLM, LlmLoadError, open_interleaved_lm
    from streaming.policies.llm import LlmPolicy

    def load() -> AnyInterleavedLM:
        try:
            return open_interleaved_lm(path, device=cfg.device, threads=cfg.threads)
        except LlmLoadError as e:
            raise UserError(str(e)) from None

    base: AnyInterleavedLM = models.get(("llm", path, cfg.threads, cfg.device), load)
    return LlmPolicy(base.fork(), cfg.latency)
