"""Open an interleaved LM directory with the runtime it needs.

A directory with an ONNX graph (``model_quant.onnx`` / ``model.onnx``, written by
``simulsub export --families llm``; our bundled default) runs on onnxruntime without torch; any other Hugging Face
causal-LM directory runs through transformers (``[train]`` extra).
"""

from __future__ import annotations

from pathlib import Path

from models.llm.onnx_runtime import OnnxInterleavedLM, OnnxLmDirError, onnx_graph
from models.llm.runtime import HfInterleavedLM, LlmModelDirError  # imports torch only when a model is built
from streaming.errors import ModelDirError

AnyInterleavedLM = OnnxInterleavedLM | HfInterleavedLM


class LlmLoadError(ModelDirError):
    """The directory cannot be run as an interleaved LM; the message says why and what to do."""


def open_interleaved_lm(model_dir: Path, *, device: str = "cpu", threads: int = 1, reuse_cache: bool = True,
                        backend: str = "auto") -> AnyInterleavedLM:
    """The LM in ``model_dir``: ``backend`` ``auto`` (ONNX when the directory has a graph), ``onnx`` or ``hf``."""
    if backend not in ("auto", "onnx", "hf"):
        raise ValueError(f"unknown LLM backend {backend!r}")
    use_onnx = backend == "onnx" or (backend == "auto" and onnx_graph(model_dir) is not None)
    if use_onnx:
        try:
            return OnnxInterleavedLM(model_dir, device=device, threads=threads, reuse_cache=reuse_cache)
        except OnnxLmDirError as e:
            raise LlmLoadError(str(e)) from None
    try:
        return HfInterleavedLM(model_dir, device=device, threads=threads, reuse_cache=reuse_cache)
    except LlmModelDirError as e:
        raise LlmLoadError(str(e)) from None
    except ImportError as e:
        raise LlmLoadError(f"{model_dir} has no ONNX graph, and running it through transformers needs torch and "
                           f"transformers ({e}): pip install -e '.[train]'") from None
