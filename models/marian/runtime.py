"""CTranslate2 inference for Marian-style models (ours, or a user's converted OPUS-MT): no torch needed.

A model directory holds the CTranslate2 files (``model.bin``, ``config.json``, vocabulary) and the
SentencePiece models ``source.spm`` and ``target.spm`` (one joint model may be copied to both names).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import ctranslate2
import sentencepiece as spm

logger = logging.getLogger(__name__)

EOS = "</s>"
DEFAULT_MAX_SOURCE_TOKENS = 512


class ModelDirError(ValueError):
    """A model directory is missing files or is not a CTranslate2 translation model."""


class SourceTooLongError(ValueError):
    """A sentence has more subword tokens than the model accepts."""


@dataclass(frozen=True)
class DecodeOptions:
    """Search settings for one translate call.

    ``prefix_bias_beta`` > 0 biases the search towards ``target_prefix`` instead of forcing it (CTranslate2).
    """

    beam_size: int = 4
    max_decoding_length: int = 256
    length_penalty: float = 1.0
    prefix_bias_beta: float = 0.0


class CT2Translator:
    """Sentence-in, sentence-out translator over a CTranslate2 model directory."""

    def __init__(
        self,
        model_dir: Path | str,
        *,
        device: str = "cpu",
        compute_type: str = "default",
        intra_threads: int = 1,
        inter_threads: int = 1,
    ) -> None:
        self.model_dir = Path(model_dir)
        missing = [n for n in ("model.bin", "source.spm", "target.spm") if not (self.model_dir / n).is_file()]
        if missing:
            raise ModelDirError(
                f"{self.model_dir} is not a CTranslate2 model directory with its SentencePiece models "
                f"(missing: {', '.join(missing)}); convert with ct2-transformers-converter "
                "and copy source.spm/target.spm beside model.bin"
            )
        self.source_sp = spm.SentencePieceProcessor(model_file=str(self.model_dir / "source.spm"))
        self.target_sp = spm.SentencePieceProcessor(model_file=str(self.model_dir / "target.spm"))
        meta_path = self.model_dir / "simulsub.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
        self.max_source_tokens: int = int(meta.get("max_source_tokens", DEFAULT_MAX_SOURCE_TOKENS))
        self.translator = ctranslate2.Translator(
            str(self.model_dir),
            device=device,
            compute_type=compute_type,
            intra_threads=intra_threads,
            inter_threads=inter_threads,
        )

    # -- tokenisation -------------------------------------------------------------------------
    def encode_source(self, text: str) -> list[str]:
        """SentencePiece pieces of ``text`` followed by ``</s>`` (CTranslate2 does not add it)."""
        pieces: list[str] = self.source_sp.encode(text, out_type=str)
        if len(pieces) + 1 > self.max_source_tokens:
            raise SourceTooLongError(
                f"sentence has {len(pieces) + 1} tokens, over the model's limit of {self.max_source_tokens}: "
                f"split it into shorter sentences"
            )
        return [*pieces, EOS]

    def encode_target(self, text: str) -> list[str]:
        pieces: list[str] = self.target_sp.encode(text, out_type=str)
        return pieces

    def decode_target(self, pieces: list[str]) -> str:
        text: str = self.target_sp.decode_pieces(pieces)
        return text

    # -- translation --------------------------------------------------------------------------
    def translate_pieces(
        self,
        sources: list[list[str]],
        options: DecodeOptions = DecodeOptions(),
        target_prefixes: list[list[str]] | None = None,
    ) -> list[list[str]]:
        """Translate pre-tokenised sources (each ending in ``</s>``) to target pieces."""
        if not sources:
            return []
        kwargs: dict[str, object] = {}
        if target_prefixes is not None and any(target_prefixes):
            kwargs["target_prefix"] = target_prefixes
            if options.prefix_bias_beta > 0:
                kwargs["prefix_bias_beta"] = options.prefix_bias_beta
        results = self.translator.translate_batch(
            sources,
            beam_size=options.beam_size,
            max_decoding_length=min(options.max_decoding_length, self.max_source_tokens - 1),
            length_penalty=options.length_penalty,
            max_batch_size=64,
            **kwargs,
        )
        return [list(r.hypotheses[0]) for r in results]

    def translate(self, texts: list[str], options: DecodeOptions = DecodeOptions()) -> list[str]:
        """Translate detokenised sentences; an empty sentence translates to an empty string."""
        idx = [i for i, t in enumerate(texts) if t.strip()]
        out = [""] * len(texts)
        hyps = self.translate_pieces([self.encode_source(texts[i]) for i in idx], options)
        for i, h in zip(idx, hyps, strict=False):
            out[i] = self.decode_target(h)
        return out

    def translate_sentence(
        self, source: str, *, beam_size: int = 4, target_prefix: str = "", prefix_bias_beta: float = 0.0
    ) -> str:
        """One sentence (possibly a prefix of one) to detokenised text; implements ``SentenceTranslator``."""
        if not source.strip():
            return ""
        prefixes = [self.encode_target(target_prefix)] if target_prefix else None
        options = DecodeOptions(beam_size=beam_size, prefix_bias_beta=prefix_bias_beta)
        return self.decode_target(self.translate_pieces([self.encode_source(source)], options, prefixes)[0])

    def continue_prefix(
        self, source: str, target_prefix: str, *, beam_size: int = 1, max_new_tokens: int = 8
    ) -> tuple[str, bool]:
        """Extend ``target_prefix`` by at most ``max_new_tokens`` pieces; implements ``PrefixContinuer``."""
        prefix = self.encode_target(target_prefix) if target_prefix else []
        budget = min(len(prefix) + max_new_tokens, self.max_source_tokens - 1)
        result = self.translator.translate_batch(
            [self.encode_source(source)], target_prefix=[prefix] if prefix else None, beam_size=beam_size,
            max_decoding_length=budget,
        )[0]
        pieces = list(result.hypotheses[0])
        return self.decode_target(pieces), len(pieces) < budget
