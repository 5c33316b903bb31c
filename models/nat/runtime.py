"""onnxruntime inference for the CTC NAT (no torch): one parallel pass per sentence, argmax inside the graph.

A model directory (written by ``models.nat.export.convert``) holds ``model.onnx`` and/or ``model_int8.onnx``,
``source.spm`` (the joint SentencePiece model), ``config.json`` and optionally ``shortlist.npz`` (a lexical
shortlist: the graph then scores only the candidate pieces of each source, see ``models.nat.shortlist``).

Sources are encoded as SentencePiece ids followed by ``</s>`` (id 1), as in training and as the AR model does.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm

from models.nat.shortlist import FILE_NAME as SHORTLIST_FILE
from models.nat.shortlist import Shortlist
from models.onnx_session import open_session
from streaming.errors import ModelDirError, SourceTooLongError

logger = logging.getLogger(__name__)

__all__ = ["ModelDirError", "NatTranslator", "SourceTooLongError", "ctc_collapse_np"]

EOS_ID = 1


def ctc_collapse_np(tokens: np.ndarray, blank: int) -> np.ndarray:
    """Greedy CTC collapse of a 1-D id array: merge repeats, drop blanks."""
    t = np.asarray(tokens).reshape(-1)
    if t.size == 0:
        return t
    keep = np.ones(t.shape, dtype=bool)
    keep[1:] = t[1:] != t[:-1]
    keep &= t != blank
    return t[keep]


class NatTranslator:
    """Sentence-in, sentence-out NAT translator; implements ``streaming.translator.SentenceTranslator``."""

    def __init__(
        self,
        model_dir: Path | str,
        *,
        quantized: bool = True,
        threads: int = 1,
        providers: list[str] | None = None,
        use_shortlist: bool = True,
    ) -> None:
        """``quantized`` picks ``model_int8.onnx`` (else ``model.onnx``); ``threads`` = intra-op threads.

        ``use_shortlist``: score only each source's shortlist when the directory has ``shortlist.npz``
        (False, or no file: all pieces).

        ``providers``: onnxruntime execution providers in order; None = CUDA first when available, then CPU
        (:mod:`models.onnx_session`'s rule).
        """
        self.model_dir = Path(model_dir)
        onnx_name = "model_int8.onnx" if quantized else "model.onnx"
        need = (onnx_name, "source.spm", "config.json")
        if not self.model_dir.is_dir():
            raise ModelDirError(f"{self.model_dir} is not a directory (expected a NAT model directory)")
        missing = [n for n in need if not (self.model_dir / n).is_file()]
        if missing:
            raise ModelDirError(
                f"{self.model_dir} is not a NAT model directory (missing: {', '.join(missing)}); "
                "write one with models.nat.export.convert"
            )
        try:
            cfg: dict[str, Any] = json.loads((self.model_dir / "config.json").read_text(encoding="utf-8"))
            self.blank_id = int(cfg["blank_id"])
            self.vocab_size = int(cfg["vocab_size"])
            self.max_source_tokens = int(cfg["max_source_tokens"])
            self.upsample = int(cfg["upsample"])
        except (ValueError, KeyError, TypeError) as e:
            raise ModelDirError(f"{self.model_dir / 'config.json'} is not a valid NAT config: {e}") from e
        self.sp = spm.SentencePieceProcessor(model_file=str(self.model_dir / "source.spm"))
        if self.sp.get_piece_size() != self.vocab_size:
            raise ModelDirError(
                f"source.spm has {self.sp.get_piece_size()} pieces but config.json says {self.vocab_size}"
            )
        self.session = open_session(self.model_dir / onnx_name, threads=threads, providers=providers)
        names = [i.name for i in self.session.get_inputs()]
        if names != ["src_ids", "vocab_ids"]:
            raise ModelDirError(f"{self.model_dir / onnx_name} takes inputs {names}, expected ['src_ids', "
                                "'vocab_ids']: re-export it with this version (models.nat.export.convert)")
        self.all_classes = np.arange(self.vocab_size + 1, dtype=np.int64)
        self.shortlist: Shortlist | None = None
        if use_shortlist and (self.model_dir / SHORTLIST_FILE).is_file():
            self.shortlist = Shortlist.load(self.model_dir / SHORTLIST_FILE)
            if self.shortlist.vocab_size != self.vocab_size:
                raise ModelDirError(f"{SHORTLIST_FILE} covers {self.shortlist.vocab_size} pieces, the model "
                                    f"{self.vocab_size}")
            self._union = self.shortlist.incremental()
        logger.info("NAT %s on %s (%s)", self.model_dir / onnx_name, self.session.get_providers(),
                    "lexical shortlist" if self.shortlist is not None else "all pieces")

    def encode(self, text: str) -> list[int]:
        """SentencePiece ids of ``text`` followed by ``</s>``; raises SourceTooLongError past the limit."""
        ids: list[int] = [*self.sp.encode(text, out_type=int), EOS_ID]
        if len(ids) > self.max_source_tokens:
            raise SourceTooLongError(
                f"source has {len(ids)} tokens (with </s>); this NAT accepts at most {self.max_source_tokens}"
            )
        return ids

    def translate_ids(self, ids: list[int]) -> list[int]:
        """One parallel pass: decoder argmax tokens → CTC collapse → piece ids (``</s>`` dropped)."""
        src = np.asarray([ids], dtype=np.int64)
        vocab = self.all_classes if self.shortlist is None else self._union(ids)
        (tokens,) = self.session.run(["tokens"], {"src_ids": src, "vocab_ids": vocab})
        out = ctc_collapse_np(tokens[0], self.blank_id)
        out = out[(out != EOS_ID) & (out < self.vocab_size)]
        return [int(i) for i in out]

    def translate_sentence(
        self, source: str, *, beam_size: int = 1, target_prefix: str = "", prefix_bias_beta: float = 0.0
    ) -> str:
        """Translate one (possibly partial) sentence.

        A one-pass NAT has no search: ``beam_size``, ``target_prefix`` and ``prefix_bias_beta`` are accepted for
        the protocol and ignored (re-translation policies handle stability with mask-k instead).
        """
        if not source.strip():
            return ""
        return str(self.sp.decode(self.translate_ids(self.encode(source))))

    def translate(self, texts: list[str]) -> list[str]:
        """Translate sentences one by one (batch 1 graph)."""
        return [self.translate_sentence(t) for t in texts]
