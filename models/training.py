"""Pieces every resumable training run shares: the options guard and the learning-rate schedule."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

RESUMABLE_CHANGES = ("epochs", "threads")
"""Options a resumed run may change: how long it trains and on how many threads."""


def guard_options(
    work_dir: Path, options: Mapping[str, object], *, may_change: Iterable[str] = RESUMABLE_CHANGES
) -> None:
    """Write ``work_dir/options.json``, refusing (SystemExit) to resume a run that was started with other options."""
    path = work_dir / "options.json"
    if path.exists():
        saved = json.loads(path.read_text(encoding="utf-8"))
        free = set(may_change)
        changed = sorted(k for k, v in options.items() if k not in free and saved.get(k) != v)
        if changed:
            raise SystemExit(
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
