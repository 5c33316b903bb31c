"""Compute device selection (``--device auto|cpu|cuda``) for onnxruntime and CTranslate2.

``auto`` uses the GPU when both runtimes can (onnxruntime's CUDA provider from the ``[gpu]`` extra,
``onnxruntime-gpu``, and a CUDA build of CTranslate2 that sees a device) and the CPU otherwise. Asking for
``cuda`` where it is absent is an error with the reason and the fix, never a silent fall back to the CPU.
"""

from __future__ import annotations

import argparse
import functools
import logging

from app.errors import UserError
from models.onnx_session import CPU_PROVIDER, CUDA_PROVIDER, DEVICES, onnxruntime_has_cuda, session_providers

logger = logging.getLogger(__name__)

__all__ = ["CPU_PROVIDER", "CUDA_PROVIDER", "DEVICES", "DeviceUnavailableError", "add_device_argument",
           "ctranslate2_cuda_devices", "cuda_missing_reason", "onnx_providers", "onnxruntime_has_cuda",
           "resolve_device"]


class DeviceUnavailableError(UserError):
    """``--device cuda`` was asked for on a machine (or an install) without CUDA."""


@functools.cache
def ctranslate2_cuda_devices() -> int:
    """Number of CUDA devices CTranslate2 can use (0 for a CPU-only build or no GPU)."""
    try:
        import ctranslate2
    except ImportError:
        return 0
    try:
        return int(ctranslate2.get_cuda_device_count())
    except (RuntimeError, AttributeError):
        return 0


def cuda_missing_reason() -> str | None:
    """Why ``cuda`` cannot be used here (None when both runtimes can use it)."""
    reasons = []
    if not onnxruntime_has_cuda():
        reasons.append("onnxruntime has no CUDAExecutionProvider (install the GPU build: pip install -e '.[gpu]', "
                       "which replaces onnxruntime with onnxruntime-gpu, and check that the CUDA and cuDNN "
                       "libraries it needs are found)")
    if ctranslate2_cuda_devices() == 0:
        reasons.append("CTranslate2 sees no CUDA device (no NVIDIA GPU/driver, or a CPU-only build)")
    return "; ".join(reasons) or None


def resolve_device(device: str) -> str:
    """``cpu`` or ``cuda`` for a requested ``auto|cpu|cuda``; raises DeviceUnavailableError for a missing CUDA."""
    if device not in DEVICES:
        raise UserError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "cpu":
        return "cpu"
    reason = cuda_missing_reason()
    if device == "cuda" and reason:
        raise DeviceUnavailableError(f"--device cuda is not available on this machine: {reason}. "
                                     "Use --device cpu (or auto).")
    resolved = "cpu" if reason else "cuda"
    if device == "auto":
        logger.info("device auto → %s", resolved)
    return resolved


def onnx_providers(device: str) -> list[str]:
    """onnxruntime execution providers for a resolved device (``cpu`` or ``cuda``): the one rule,
    :func:`models.onnx_session.session_providers` (CUDA then CPU for ``cuda``; the CPU alone for ``cpu``)."""
    return session_providers(device)


def add_device_argument(p: argparse.ArgumentParser, flag: str = "--device") -> None:
    """The ``--device auto|cpu|cuda`` option (``flag`` differs where ``--device`` names an audio device)."""
    p.add_argument(flag, dest="compute_device", choices=DEVICES, default="auto",
                   help="where models run: auto (CUDA when onnxruntime-gpu and CTranslate2 can use a GPU, else "
                        "CPU), cpu, or cuda (an error when CUDA is unavailable) (default auto)")
