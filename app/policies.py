"""The built-in streaming policies and :func:`build_policy`; loaded models are cached so sessions share them.

Policies are looked up by name in :mod:`app.policy_registry` (this module registers the built-in ones at its
end: reta, fretna, waitk, llm). A :class:`ModelCache` holds every translation model loaded so far, keyed by what
identifies it (kind, directory, threads, options). Policies keep their own per-sentence state; the models behind
them are shared: CTranslate2 and onnxruntime sessions may be called from several threads, and the wait-k runtime
is forked (shared ONNX sessions, private caches).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.devices import onnx_providers
from app.errors import UserError
from app.policy_registry import (
    ModelCache,
    PolicyConfig,
    PolicySpec,
    available_policies,
    get_policy,
    policy_config,
    policy_config_from_args,
    policy_names,
    register_policy,
)
from app.profiles import (
    DEFAULT_LLM_MODEL,
    DEFAULT_NAT_MODEL,
    DEFAULT_WAITK_MODEL,
    load_translator,
    resolve_model_dir,
)
from streaming.policies.llm import LATENCY_LEVELS
from streaming.policy import Policy

__all__ = [
    "LATENCY_LEVELS",
    "ModelCache",
    "PolicyConfig",
    "PolicySpec",
    "available_policies",
    "build_policy",
    "get_policy",
    "policy_config",
    "policy_config_from_args",
    "policy_names",
    "register_policy",
]


def __getattr__(name: str) -> tuple[str, ...]:
    """``POLICY_NAMES``: the registered names at the time it is read (same as :func:`policy_names`)."""
    if name == "POLICY_NAMES":
        return policy_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_policy(cfg: PolicyConfig, cache: ModelCache | None = None) -> Policy:
    """A fresh policy for ``cfg`` (through its registered builder); its model comes from ``cache`` when given
    (loaded there once). :class:`UserError` for an unknown name or an option out of range."""
    if cfg.mask_k < 0:
        raise UserError("--mask-k must be >= 0")
    if cfg.beam < 1:
        raise UserError("--beam must be >= 1")
    spec = get_policy(cfg.name)
    return spec.builder(cfg, cache if cache is not None else ModelCache())


def _reta_policy(cfg: PolicyConfig, models: ModelCache) -> Policy:
    """Re-translation with a CTranslate2 AR model (beam search, optional prefix bias)."""
    from streaming.policies.reta import RetaOptions, RetaPolicy

    try:
        options = RetaOptions(beam_size=cfg.beam, prefix=cfg.prefix_bias,  # type: ignore[arg-type]
                              prefix_beta=cfg.prefix_beta, mask_k=cfg.mask_k)
    except ValueError as e:
        raise UserError(str(e)) from None
    translator = models.get(("ct2", cfg.model, cfg.threads, cfg.device, cfg.source_lang, cfg.target_lang),
                            lambda: _ct2(cfg, cfg.model))
    return RetaPolicy(translator, options)


def _fretna_policy(cfg: PolicyConfig, models: ModelCache) -> Policy:
    """Re-translation with the one-pass NAT (CTC) model."""
    from streaming.policies.fretna import FretnaPolicy

    nat = models.get(("nat", cfg.model, cfg.threads, cfg.shortlist, cfg.device), lambda: _load_nat(cfg))
    return FretnaPolicy(nat, mask_k=cfg.mask_k)


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
    if cfg.k < 1:
        raise UserError("--k must be >= 1")
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


def _llm_available(cfg: PolicyConfig) -> bool:
    """The LLM policy runs only when its model directory is there (the bundled one or ``cfg.llm_model``)."""
    return (cfg.llm_model or DEFAULT_LLM_MODEL).is_dir()


# -- the built-in policies (a new policy: one more register_policy call; see app.policy_registry) -------------
register_policy(PolicySpec(
    "reta", "re-translation with an AR model: the tail of the caption may be revised", _reta_policy))
register_policy(PolicySpec(
    "fretna", "re-translation with the one-pass non-autoregressive model: cheap revisable captions",
    _fretna_policy))
register_policy(PolicySpec(
    "waitk", "wait-k: read k source words, then one target word per word read; never revises", _waitk_policy,
    revises=False))
register_policy(PolicySpec(
    "llm", "a causal LM that interleaves reading and writing (EAST-style); never revises", _llm_policy,
    available=_llm_available, revises=False))
