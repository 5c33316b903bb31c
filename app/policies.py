"""Build a streaming policy from CLI/config options (the registry later issues extend)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.errors import UserError
from app.profiles import DEFAULT_NAT_MODEL, DEFAULT_WAITK_MODEL, load_translator
from streaming.policy import Policy

POLICY_NAMES = ("reta", "fretna", "waitk")


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


def build_policy(cfg: PolicyConfig) -> Policy:
    if cfg.mask_k < 0:
        raise UserError("--mask-k must be >= 0")
    if cfg.beam < 1:
        raise UserError("--beam must be >= 1")
    if cfg.name == "reta":
        from streaming.policies.reta import RetaOptions, RetaPolicy

        try:
            options = RetaOptions(beam_size=cfg.beam, prefix=cfg.prefix_bias,  # type: ignore[arg-type]
                                  prefix_beta=cfg.prefix_beta, mask_k=cfg.mask_k)
        except ValueError as e:
            raise UserError(str(e)) from None
        return RetaPolicy(load_translator(cfg.model, threads=cfg.threads), options)
    if cfg.name == "fretna":
        from models.nat.runtime import ModelDirError, NatTranslator
        from streaming.policies.fretna import FretnaPolicy

        path = cfg.model or DEFAULT_NAT_MODEL
        if not path.is_dir():
            raise UserError(f"NAT model directory {path} does not exist (train one: simulsub distill && "
                            "simulsub train nat --export, or pass --model DIR)")
        try:
            nat = NatTranslator(path, threads=cfg.threads, use_shortlist=cfg.shortlist)
        except ModelDirError as e:
            raise UserError(str(e)) from None
        return FretnaPolicy(nat, mask_k=cfg.mask_k)
    if cfg.name == "waitk":
        if cfg.k < 1:
            raise UserError("--k must be >= 1")
        return _waitk_policy(cfg)
    raise UserError(f"unknown policy {cfg.name!r}; choose one of {', '.join(POLICY_NAMES)}")


def _waitk_policy(cfg: PolicyConfig) -> Policy:
    """The trained incremental wait-k model when ``cfg.model`` is one (or, with no model given, the bundled one
    when present); test-time wait-k over a CTranslate2 model otherwise."""
    from models.waitk.runtime import WaitkModelDirError, WaitkOnnx, is_waitk_dir

    path = cfg.model if cfg.model is not None else (DEFAULT_WAITK_MODEL if DEFAULT_WAITK_MODEL.is_dir() else None)
    if path is not None and is_waitk_dir(path):
        from streaming.policies.waitk import WaitkPolicy

        try:
            return WaitkPolicy(WaitkOnnx(path, threads=cfg.threads), cfg.k)
        except WaitkModelDirError as e:
            raise UserError(str(e)) from None
    from streaming.policies.waitk_offline import OfflineWaitkPolicy, WaitkOptions

    return OfflineWaitkPolicy(load_translator(path, threads=cfg.threads), WaitkOptions(k=cfg.k, beam_size=cfg.beam))
