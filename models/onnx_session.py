"""The one way simulsub opens an onnxruntime graph: threads, optimisation, execution providers and load errors.

Provider rule (the only one in the project):

- ``providers`` given: used as is, in that order (the caller has decided, e.g. ``app.devices.onnx_providers``).
- otherwise by ``device``:

  - ``"cpu"``: ``CPUExecutionProvider`` only;
  - ``"cuda"``: ``CUDAExecutionProvider`` then ``CPUExecutionProvider`` (the CPU takes the few operators CUDA lacks;
    ``app.devices.resolve_device`` has already refused ``cuda`` where onnxruntime has no CUDA provider);
  - ``"auto"`` (the default): CUDA first when this onnxruntime offers it, then the CPU; the CPU alone on a CPU-only
    install, which is how every runtime behaved there before this module.

Every session gets ``intra_op_num_threads = threads``, ``inter_op_num_threads = 1`` (the graphs are run one
request at a time; parallelism across streams comes from the callers), ``ORT_ENABLE_ALL`` graph optimisation and
onnxruntime's own log at errors only. A graph onnxruntime cannot load raises :class:`ModelDirError` naming the path
and onnxruntime's message, never onnxruntime's own exception types.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streaming.errors import ModelDirError

logger = logging.getLogger(__name__)

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")
MAX_MESSAGE_CHARS = 300  # onnxruntime's load errors can quote a whole protobuf; keep the one-line message short


@functools.cache
def onnxruntime_has_cuda() -> bool:
    """True when onnxruntime offers the CUDA execution provider (``onnxruntime-gpu`` installed, CUDA found)."""
    import onnxruntime as ort

    return CUDA_PROVIDER in ort.get_available_providers()


def session_providers(device: str = "auto") -> list[str]:
    """onnxruntime execution providers, in order, for ``device`` ``auto|cpu|cuda`` (the rule in the module doc)."""
    if device == "cpu":
        return [CPU_PROVIDER]
    if device == "cuda":
        return [CUDA_PROVIDER, CPU_PROVIDER]
    if device == "auto":
        return [CUDA_PROVIDER, CPU_PROVIDER] if onnxruntime_has_cuda() else [CPU_PROVIDER]
    raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")


def session_options(threads: int = 1) -> Any:
    """The ``SessionOptions`` every simulsub session uses (see the module doc)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only: onnxruntime's warnings about initializers are not for users
    return opts


def open_session(path: str | Path, *, threads: int = 1, device: str = "auto",
                 providers: Sequence[str] | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` over the graph at ``path``.

    ``threads``: intra-op threads. ``providers`` (wins) or ``device``: the execution providers, by the module's
    rule. Raises :class:`ModelDirError` (the path and onnxruntime's message) when the file is missing or onnxruntime
    cannot load it.
    """
    import onnxruntime as ort

    path = Path(path)
    chosen = list(providers) if providers is not None else session_providers(device)
    if not path.is_file():
        raise ModelDirError(f"onnxruntime cannot load {path}: no such file")
    try:
        session = ort.InferenceSession(str(path), sess_options=session_options(threads), providers=chosen)
    except Exception as e:  # onnxruntime raises its own Fail / InvalidProtobuf / NoSuchFile / InvalidGraph types
        message = " ".join(str(e).split())[:MAX_MESSAGE_CHARS]
        raise ModelDirError(f"onnxruntime cannot load {path}: {message}") from None
    logger.debug("onnxruntime %s on %s", path, session.get_providers())
    return session
