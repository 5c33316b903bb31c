"""ReTA: re-translate the whole source prefix with an autoregressive model on every source update.

Stabilisation: display mask-k lives in :class:`streaming.caption.CaptionState`; prefix reuse lives here:

- ``prefix="forced"``: the previously *displayed* words are forced as the start of the next output,
  so what a user has seen is never revised (they become the stable prefix);
- ``prefix="biased"``: the previous full output is passed as a soft prefix (CTranslate2
  ``prefix_bias_beta``), which favours but does not force it.

A model trained on full sentences ends every output with sentence-final punctuation, also for a source
prefix. With ``strip_partial_eos`` (default) a partial output loses that punctuation when the source read
so far does not end a sentence: "Ein Mann." for "A man" is shown as "Ein Mann", so the next update
"Ein Mann geht." does not count "Mann." as erased, and a reused prefix does not carry a premature period.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from streaming.translator import SentenceTranslator
from streaming.types import EMPTY_TARGET, SENTENCE_END, SourceState, TargetState

PrefixMode = Literal["off", "forced", "biased"]
PREFIX_MODES: tuple[PrefixMode, ...] = ("off", "forced", "biased")


@dataclass(frozen=True)
class RetaOptions:
    """``beam_size``: beam width; ``prefix``: previous-output reuse; ``prefix_beta``: bias strength in (0, 1);
    ``mask_k``: the display mask the driver applies (needed here to know what was displayed)."""

    beam_size: int = 4
    prefix: PrefixMode = "off"
    prefix_beta: float = 0.2
    mask_k: int = 0
    strip_partial_eos: bool = True

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError("beam_size must be >= 1")
        if self.prefix not in PREFIX_MODES:
            raise ValueError(f"prefix must be one of {PREFIX_MODES}")
        if not 0.0 < self.prefix_beta < 1.0:
            raise ValueError("prefix_beta must be in (0, 1)")
        if self.mask_k < 0:
            raise ValueError("mask_k must be >= 0")


class RetaPolicy:
    """Re-translation with an autoregressive :class:`SentenceTranslator` (CTranslate2 in practice)."""

    name = "reta"

    def __init__(self, translator: SentenceTranslator, options: RetaOptions = RetaOptions()) -> None:
        self.translator = translator
        self.options = options
        self.reset()

    def reset(self) -> None:
        self._source: SourceState | None = None
        self._translated_for: tuple[tuple[str, ...], bool] | None = None
        self._target: TargetState = EMPTY_TARGET

    def _displayed(self) -> tuple[str, ...]:
        words = self._target.tokens
        if self._target.final or not self.options.mask_k:
            return words
        return words[: max(0, len(words) - self.options.mask_k)]

    def update(self, source: SourceState) -> TargetState:
        self._source = source
        key = (source.tokens, source.finished)
        if self._translated_for is not None and self._translated_for[0] == source.tokens:
            if source.finished and not self._target.final:
                self._target = TargetState(self._target.tokens, len(self._target.tokens), self._target.revision, True)
            return self._target
        if not source.tokens:
            self._target = TargetState((), 0, self._target.revision + 1, source.finished)
            self._translated_for = key
            return self._target
        opts = self.options
        prefix, beta, stable = "", 0.0, 0
        if opts.prefix == "forced":
            shown = self._displayed()
            prefix, stable = " ".join(shown), len(shown)
        elif opts.prefix == "biased" and self._target.tokens:
            prefix, beta = self._target.text, opts.prefix_beta
        text = self.translator.translate_sentence(
            source.text, beam_size=opts.beam_size, target_prefix=prefix, prefix_bias_beta=beta
        )
        words = tuple(text.split())
        if opts.strip_partial_eos and not source.finished:
            words = strip_sentence_end(words, source.tokens)
        if stable and words[:stable] != tuple(prefix.split()):
            stable = 0  # the tokenizer re-segmented the forced prefix differently: promise nothing
        final = source.finished
        stable = len(words) if final else min(stable, len(words))
        self._target = TargetState(words, stable, self._target.revision + 1, final)
        self._translated_for = key
        return self._target

    def finish(self) -> TargetState:
        if self._source is None:
            self._target = TargetState((), 0, self._target.revision + 1, True)
            return self._target
        if not self._target.final:
            src = self._source
            return self.update(SourceState(src.tokens, src.amount, finished=True, stable=len(src.tokens)))
        return self._target


def strip_sentence_end(words: tuple[str, ...], source: tuple[str, ...]) -> tuple[str, ...]:
    """Drop sentence-final punctuation from a translation of a source prefix that does not end a sentence."""
    if not words or (source and source[-1].endswith(SENTENCE_END)):
        return words
    last = words[-1]
    trimmed = last.rstrip("".join(SENTENCE_END))
    if trimmed == last:
        return words
    return (*words[:-1], trimmed) if trimmed else words[:-1]
