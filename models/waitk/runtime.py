"""onnxruntime inference for the wait-k model (no torch): incremental encoder and decoder steps with caches.

Implements ``streaming.policies.waitk.IncrementalModel``: ``read`` runs the encoder on a newly read word only
(past keys/values are reused, never recomputed) and appends the new cross-attention keys/values; ``propose``
runs one decoder step on the current source and holds the grown self-attention cache until ``commit``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm

from models.onnx_session import open_session
from streaming.errors import ModelDirError, SourceTooLongError

logger = logging.getLogger(__name__)

FORMAT = "simulsub-waitk"


class WaitkModelDirError(ModelDirError):
    """A directory is not a simulsub wait-k model directory."""


def sentence_end_mask(pieces: list[str]) -> np.ndarray:
    """bool [len(pieces) + 1]: pieces that are only sentence-final punctuation (``.``, ``!``, ``?``, ``▁.``, ``."``);
    the extra last entry is ``<pad>``."""
    return np.array([bool(p) and p.lstrip("\u2581").rstrip("\"'»“”)") in (".", "!", "?", "...")
                     for p in pieces] + [False], dtype=bool)


def is_waitk_dir(path: Path) -> bool:
    """True when ``path`` holds a wait-k export (``config.json`` with ``format: simulsub-waitk``)."""
    cfg = path / "config.json"
    if not cfg.is_file():
        return False
    try:
        return bool(json.loads(cfg.read_text(encoding="utf-8")).get("format") == FORMAT)
    except (ValueError, AttributeError):
        return False


class WaitkOnnx:
    """The exported wait-k model with its caches for ONE sentence at a time (``reset`` between sentences)."""

    def __init__(self, model_dir: Path | str, *, quantized: bool = True, threads: int = 1,
                 providers: list[str] | None = None) -> None:
        """Load ``model_dir`` (``encoder[_int8].onnx``, ``decoder[_int8].onnx``, ``source.spm``, ``config.json``).

        ``providers``: onnxruntime execution providers in order; None = :mod:`models.onnx_session`'s rule (CUDA
        first when available, then CPU). Raises :class:`WaitkModelDirError` for a missing or unloadable file.
        """
        self.model_dir = Path(model_dir)
        suffix = "_int8" if quantized else ""
        need = (f"encoder{suffix}.onnx", f"decoder{suffix}.onnx", "source.spm", "config.json")
        missing = [n for n in need if not (self.model_dir / n).is_file()]
        if missing or not is_waitk_dir(self.model_dir):
            raise WaitkModelDirError(f"{self.model_dir} is not a wait-k model directory (missing or invalid: "
                                     f"{', '.join(missing) or 'config.json format'}); train one with "
                                     "`simulsub train waitk --export`")
        cfg: dict[str, Any] = json.loads((self.model_dir / "config.json").read_text(encoding="utf-8"))
        self.vocab_size = int(cfg["vocab_size"])
        self.pad_id, self.eos_id = int(cfg["pad_id"]), int(cfg["eos_id"])
        self.start_id = int(cfg["decoder_start_id"])
        self.max_positions = int(cfg["max_positions"])
        self.enc_layers, self.dec_layers = int(cfg["encoder_layers"]), int(cfg["decoder_layers"])
        self.heads, self.head_dim = int(cfg["heads"]), int(cfg["head_dim"])
        self.sp = spm.SentencePieceProcessor(model_file=str(self.model_dir / "source.spm"))
        if self.sp.get_piece_size() != self.vocab_size - 1:
            raise WaitkModelDirError(f"source.spm has {self.sp.get_piece_size()} pieces, config.json "
                                     f"{self.vocab_size - 1}")
        pieces = [self.sp.id_to_piece(i) for i in range(self.vocab_size - 1)]
        self.word_start = np.array([p.startswith("\u2581") for p in pieces] + [False], dtype=bool)
        self.sentence_end = sentence_end_mask(pieces)
        try:
            self.encoder = open_session(self.model_dir / need[0], threads=threads, providers=providers)
            self.decoder = open_session(self.model_dir / need[1], threads=threads, providers=providers)
        except ModelDirError as e:
            raise WaitkModelDirError(str(e)) from None
        self.reset()

    def fork(self) -> WaitkOnnx:
        """A runtime for another stream: the same ONNX sessions and tokenizer, its own caches."""
        other = object.__new__(WaitkOnnx)
        other.__dict__.update(self.__dict__)
        other.reset()
        return other

    # -- IncrementalModel -----------------------------------------------------------------------------
    def reset(self) -> None:
        shape = (2, 1, self.heads, 0, self.head_dim)
        self._enc = np.zeros((self.enc_layers, *shape), dtype=np.float32)
        self._cross = np.zeros((self.dec_layers, *shape), dtype=np.float32)
        self._dec = np.zeros((self.dec_layers, *shape), dtype=np.float32)
        self._proposed: np.ndarray | None = None
        self.source_tokens = 0
        self.target_tokens = 0

    def word_ids(self, word: str) -> list[int]:
        """SentencePiece ids of one source word (as the whole-sentence encoding has them)."""
        return [int(i) for i in self.sp.encode(word, out_type=int)]

    def read(self, ids: list[int]) -> None:
        """Run the encoder on the new source tokens and append their cross keys/values."""
        if not ids:
            return
        if self.source_tokens + len(ids) > self.max_positions:
            raise SourceTooLongError(f"source exceeds the wait-k model's {self.max_positions} tokens")
        present, cross_new = self.encoder.run(None, {"src_ids": np.asarray([ids], dtype=np.int64), "past": self._enc})
        self._enc = present
        self._cross = np.concatenate([self._cross, cross_new], axis=4)
        self.source_tokens += len(ids)

    def propose(self, token: int) -> np.ndarray:
        """Next-token logits [V] after feeding ``token`` on the source read so far (cache held until commit)."""
        logits, present = self.decoder.run(None, {"token": np.asarray([[token]], dtype=np.int64), "past": self._dec,
                                                  "cross": self._cross})
        self._proposed = present
        return np.asarray(logits[0])

    def commit(self) -> None:
        """Keep the cache of the last ``propose`` (its token is now part of the target history)."""
        if self._proposed is None:
            raise RuntimeError("commit() without propose()")
        self._dec, self._proposed = self._proposed, None
        self.target_tokens += 1

    def decode(self, ids: list[int]) -> str:
        return str(self.sp.decode(ids))
