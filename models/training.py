"""Pieces every resumable training run shares: the options guard and the learning-rate schedule."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from streaming.errors import WorkDirError

logger = logging.getLogger(__name__)

RESUMABLE_CHANGES = ("epochs", "threads")
"""Options a resumed run may change: how long it trains and on how many threads."""


def guard_options(
    work_dir: Path, options: Mapping[str, object], *, may_change: Iterable[str] = RESUMABLE_CHANGES
) -> None:
    """Write ``work_dir/options.json``; :class:`WorkDirError` for resuming a run that was started with other
    options."""
    path = work_dir / "options.json"
    if path.exists():
        saved = json.loads(path.read_text(encoding="utf-8"))
        free = set(may_change)
        changed = sorted(k for k, v in options.items() if k not in free and saved.get(k) != v)
        if changed:
            raise WorkDirError(
                f"{work_dir} holds a run with other options ({', '.join(changed)}); use another --work-dir"
            )
    path.write_text(json.dumps(dict(options), indent=2), encoding="utf-8")


def inverse_sqrt_lr(step: int, peak: float, warmup: int) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then inverse square-root decay (steps count from 1)."""
    step = max(step, 1)
    return peak * min(step / warmup, math.sqrt(warmup / step))


def cpu_has_bf16() -> bool:
    """True when /proc/cpuinfo lists native bfloat16 arithmetic (avx512_bf16 or amx_bf16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resume_last_epoch(work_dir: Path, model: Any, optim: Any) -> tuple[int, int]:
    """Load the newest ``epochNN.pt`` of ``work_dir`` into ``model``/``optim`` (and torch's RNG); returns the epoch
    to start from and the optimiser step count ((1, 0) when there is none)."""
    import torch

    ckpts = sorted(work_dir.glob("epoch*.pt"))
    if not ckpts:
        return 1, 0
    state = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optim.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    logger.info("resumed from %s", ckpts[-1].name)
    return int(state["epoch"]) + 1, int(state["step"])


def save_epoch(work_dir: Path, epoch: int, step: int, config: Mapping[str, object], model: Any, optim: Any) -> Path:
    """Write ``epochNN.pt`` atomically (config, weights, optimiser, step, RNG) for :func:`resume_last_epoch`."""
    import torch

    ckpt = work_dir / f"epoch{epoch:02d}.pt"
    torch.save({"config": dict(config), "model": model.state_dict(), "optimizer": optim.state_dict(),
                "epoch": epoch, "step": step, "torch_rng": torch.get_rng_state()}, ckpt.with_suffix(".tmp"))
    ckpt.with_suffix(".tmp").rename(ckpt)
    return ckpt
