"""Build a streaming policy from CLI/config options (the registry later issues extend)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.errors import UserError
from app.profiles import DEFAULT_NAT_MODEL, load_translator
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
            nat = NatTranslator(path, threads=cfg.threads)
        except ModelDirError as e:
            raise UserError(str(e)) from None
        return FretnaPolicy(nat, mask_k=cfg.mask_k)
    if cfg.name == "waitk":
        from streaming.policies.waitk_offline import OfflineWaitkPolicy, WaitkOptions

        if cfg.k < 1:
            raise UserError("--k must be >= 1")
        translator = load_translator(cfg.model, threads=cfg.threads)
        return OfflineWaitkPolicy(translator, WaitkOptions(k=cfg.k, beam_size=cfg.beam))
    raise UserError(f"unknown policy {cfg.name!r}; choose one of {', '.join(POLICY_NAMES)}")
