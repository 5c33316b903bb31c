"""Run an ONNX-exported interleaved LM (:mod:`models.llm.onnx_export`) on onnxruntime: no torch, no transformers.

Same contract as :class:`models.llm.runtime.HfInterleavedLM` (an ``InterleavedLM`` for
:class:`streaming.policies.llm.LlmPolicy`, sequence handling in :mod:`models.llm.sequence`): the sequence's keys
and values (``[L, 2, H, P, D]`` float32) come back from every call and go into the next one.

The tokenizer is read from ``tokenizer.json`` with the ``tokenizers`` library (:class:`JsonTokenizer`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from models.llm.sequence import InterleavedSequence
from models.llm.tokens import TokenizerError, control_ids
from models.onnx_session import open_session
from streaming.errors import ModelDirError

logger = logging.getLogger(__name__)

ONNX_FP32 = "model.onnx"
ONNX_INT8 = "model_quant.onnx"
GRAPH_INFO = "onnx_lm.json"  # what the export checked (written by models.llm.onnx_export)


def cache_shape(config: dict[str, Any], length: int) -> tuple[int, int, int, int, int]:
    """``[L, 2, H, length, D]`` (layers, keys/values, heads, tokens, head size) for a model's ``config.json``."""
    heads = int(config["decoder_attention_heads"])
    return (int(config["decoder_layers"]), 2, heads, length, int(config["d_model"]) // heads)


class OnnxLmDirError(ModelDirError):
    """A directory does not hold a usable ONNX interleaved LM."""


def onnx_graph(model_dir: Path) -> Path | None:
    """The graph an ONNX LM directory runs: ``model_quant.onnx`` (int8), else ``model.onnx``; None if neither."""
    for name in (ONNX_INT8, ONNX_FP32):
        if (model_dir / name).is_file():
            return model_dir / name
    return None


class JsonTokenizer:
    """The parts of a Hugging Face fast tokenizer the interleaved LM uses, read from ``tokenizer.json`` and
    ``tokenizer_config.json`` with the ``tokenizers`` library."""

    chat_template = None

    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        path = model_dir / "tokenizer.json"
        if not path.is_file():
            raise OnnxLmDirError(f"{model_dir} has no tokenizer.json")
        self._tok = Tokenizer.from_file(str(path))
        cfg_path = model_dir / "tokenizer_config.json"
        cfg: dict[str, Any] = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else {}
        if cfg.get("chat_template"):
            raise OnnxLmDirError(f"{model_dir}: tokenizers with a chat template run through transformers (remove "
                                 "the ONNX graph to use it)")
        self._vocab: dict[str, int] = self._tok.get_vocab(with_added_tokens=True)
        self.eos_token_id = self._special_id(cfg, "eos_token")
        self.bos_token_id = self._special_id(cfg, "bos_token")
        self.pad_token_id = self._special_id(cfg, "pad_token")

    def _special_id(self, cfg: dict[str, Any], key: str) -> int | None:
        token = cfg.get(key)
        if isinstance(token, dict):  # {"content": "</s>", ...}
            token = token.get("content")
        return self._vocab.get(token) if isinstance(token, str) else None

    def get_vocab(self) -> dict[str, int]:
        return dict(self._vocab)

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": list(self._tok.encode(text, add_special_tokens=add_special_tokens).ids)}

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return str(self._tok.decode(ids, skip_special_tokens=skip_special_tokens))


class _Loaded:
    """Session, tokenizer and prompt caches shared by every fork."""

    def __init__(self, model_dir: Path, device: str, threads: int, graph_name: str | None) -> None:
        graph = model_dir / graph_name if graph_name else onnx_graph(model_dir)
        if graph is not None and not graph.is_file():
            graph = None
        config_path = model_dir / "config.json"
        if graph is None or not config_path.is_file():
            raise OnnxLmDirError(f"{model_dir} holds no ONNX interleaved LM ({ONNX_INT8} or {ONNX_FP32} with "
                                 "config.json); export one with `simulsub export --families llm`")
        self.config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8"))
        self.tokenizer = JsonTokenizer(model_dir)
        try:
            self.control = control_ids(self.tokenizer)
        except TokenizerError as e:
            raise OnnxLmDirError(f"{model_dir}: {e}") from None
        try:
            self.session = open_session(graph, threads=threads, device=device)  # device: cpu | cuda | auto
        except ModelDirError as e:
            raise OnnxLmDirError(str(e)) from None
        self.graph = graph
        self.max_positions = int(self.config.get("max_position_embeddings") or 512)
        self.empty = np.zeros(cache_shape(self.config, 0), dtype=np.float32)
        self.prompt_cache: dict[str, tuple[list[int], np.ndarray, np.ndarray]] = {}
        info = model_dir / GRAPH_INFO
        if info.is_file():
            logger.info("LLM graph %s, export check %s", graph.name, json.dumps(json.loads(info.read_text("utf-8"))))


class OnnxInterleavedLM(InterleavedSequence):
    """One growing interleaved sequence over an ONNX-exported causal LM (implements ``InterleavedLM``)."""

    def __init__(self, model_dir: Path | str, *, device: str = "cpu", threads: int = 1, reuse_cache: bool = True,
                 graph_name: str | None = None, _loaded: _Loaded | None = None) -> None:
        """``graph_name`` picks a graph in the directory (default: ``model_quant.onnx``, else ``model.onnx``)."""
        self.model_dir = Path(model_dir)
        self._ort = _loaded or _Loaded(self.model_dir, device, threads, graph_name)
        super().__init__(self._ort, reuse_cache)

    def fork(self, *, reuse_cache: bool | None = None) -> OnnxInterleavedLM:
        """A new sequence over the same session."""
        return OnnxInterleavedLM(self.model_dir, reuse_cache=self.reuse_cache if reuse_cache is None else reuse_cache,
                                 _loaded=self._ort)

    @property
    def runtime(self) -> str:
        """What runs the model, for reports."""
        return f"onnxruntime ({self._ort.graph.name})"

    def _empty_cache(self) -> np.ndarray:
        return self._ort.empty

    def _copy_cache(self, cache: np.ndarray) -> np.ndarray:
        return cache  # never modified in place: every step returns a new array

    def _run(self, ids: list[int], cache: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, present = self._ort.session.run(None, {"input_ids": np.asarray([ids], dtype=np.int64),
                                                       "past": cache})
        return np.asarray(logits, dtype=np.float32), present
