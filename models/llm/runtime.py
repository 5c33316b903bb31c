"""Run any local Hugging Face causal LM with the two control tokens as an :class:`InterleavedLM`.

The sequence's KV cache is kept across every read, probe and write step (``reuse_cache=True``), so a whole
sentence costs about one pass over its interleaved tokens; ``reuse_cache=False`` recomputes the full sequence at
every step instead (the baseline the benchmark compares against; same outputs). The latency prompt's cache is
computed once per level and copied for each new sentence. :meth:`fork` gives another policy its own sequence
over the same loaded weights (server sessions).

Needs torch and transformers (the ``[train]`` extra); the weights load in float32 on the CPU (bfloat16/float16
checkpoints are upcast) and in their own dtype on CUDA.
"""

from __future__ import annotations

import copy
import inspect
import logging
from pathlib import Path
from typing import Any

import numpy as np

from models.llm.sequence import InterleavedSequence
from models.llm.tokens import TokenizerError, control_ids
from streaming.errors import ModelDirError

logger = logging.getLogger(__name__)


class LlmModelDirError(ModelDirError):
    """A directory is not a usable interleaved-translation causal LM."""


def is_llm_dir(path: Path) -> bool:
    """True for a Hugging Face model directory (``config.json`` + a tokenizer file)."""
    return (path / "config.json").is_file() and any(
        (path / n).is_file() for n in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"))


class _Loaded:
    """Weights and tokenizer shared by every fork."""

    def __init__(self, model_dir: Path, device: str, threads: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not is_llm_dir(model_dir):
            raise LlmModelDirError(f"{model_dir} is not a Hugging Face causal-LM directory (needs config.json and "
                                   "a tokenizer); train one with `simulsub train llm-simt --export DIR`")
        if device == "cpu":
            torch.set_num_threads(threads)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
            dtype = torch.float32 if device == "cpu" else "auto"
            model: Any = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
            self.model = model.to(device).eval()
        except (OSError, ValueError, KeyError) as e:
            raise LlmModelDirError(f"cannot load {model_dir} as a causal LM: {e}") from None
        try:
            self.control = control_ids(self.tokenizer)
        except TokenizerError as e:
            raise LlmModelDirError(f"{model_dir}: {e}") from None
        config = self.model.config
        self.max_positions = int(getattr(config, "max_position_embeddings", 0) or 4096)
        params = inspect.signature(self.model.forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        self.device = device
        self.prompt_cache: dict[str, tuple[list[int], Any, np.ndarray]] = {}


class HfInterleavedLM(InterleavedSequence):
    """One growing interleaved sequence over a loaded causal LM (implements ``InterleavedLM``)."""

    def __init__(self, model_dir: Path | str, *, device: str = "cpu", threads: int = 1, reuse_cache: bool = True,
                 _loaded: _Loaded | None = None) -> None:
        self.model_dir = Path(model_dir)
        self._hf = _loaded or _Loaded(self.model_dir, device, threads)
        super().__init__(self._hf, reuse_cache)

    def fork(self, *, reuse_cache: bool | None = None) -> HfInterleavedLM:
        """A new sequence over the same weights."""
        return HfInterleavedLM(self.model_dir, reuse_cache=self.reuse_cache if reuse_cache is None else reuse_cache,
                               _loaded=self._hf)

    @property
    def runtime(self) -> str:
        """What runs the model, for reports."""
        return f"transformers ({type(self._hf.model).__name__}, {self._hf.device})"

    def _empty_cache(self) -> Any:
        return None

    def _copy_cache(self, cache: Any) -> Any:
        return copy.deepcopy(cache)  # transformers caches grow in place

    def _run(self, ids: list[int], cache: Any) -> tuple[np.ndarray, Any]:
        import torch

        x = torch.tensor([ids], dtype=torch.long, device=self._hf.device)
        with torch.inference_mode():
            if cache is None and not self.reuse_cache:
                out = self._hf.model(input_ids=x, use_cache=False)
            else:
                out = self._hf.model(input_ids=x, use_cache=True, **{self._hf.cache_kw: cache})
        new_cache = None
        if self.reuse_cache:  # transformers ≥ 5 names it ``cache``, older versions ``past_key_values``
            new_cache = out["cache"] if "cache" in out else out["past_key_values"]
        return out.logits[0, -1].float().cpu().numpy(), new_cache
