"""What re-translation policies need from a sentence translator (implemented by the model runtimes)."""

from __future__ import annotations

from typing import Protocol


class SentenceTranslator(Protocol):
    """Translate one (possibly partial) source sentence to detokenised target text.

    ``target_prefix`` (detokenised) is forced at the start of the output, or only favoured when
    ``prefix_bias_beta`` > 0 (CTranslate2's biased decoding).
    """

    def translate_sentence(
        self, source: str, *, beam_size: int = 4, target_prefix: str = "", prefix_bias_beta: float = 0.0
    ) -> str: ...


class PrefixContinuer(Protocol):
    """Continue a forced target prefix by at most ``max_new_tokens`` subword tokens.

    Returns the detokenised output (prefix included) and whether decoding ended by itself (end of
    sentence) rather than by the token budget.
    """

    def continue_prefix(
        self, source: str, target_prefix: str, *, beam_size: int = 1, max_new_tokens: int = 8
    ) -> tuple[str, bool]: ...
