"""Deterministic stand-ins for model runtimes, so core tests need no model files."""

from __future__ import annotations

from dataclasses import dataclass, field

LEXICON = {"man": "Mann", "woman": "Frau", "walks": "geht", "runs": "rennt", "the": "der", ".": "."}


@dataclass
class LexiconTranslator:
    """Word-by-word 'translation'; 'a' becomes 'eine' when 'woman' follows, so prefixes get revised."""

    calls: list[tuple[str, int, str, float]] = field(default_factory=list)

    def translate_sentence(
        self, source: str, *, beam_size: int = 4, target_prefix: str = "", prefix_bias_beta: float = 0.0
    ) -> str:
        self.calls.append((source, beam_size, target_prefix, prefix_bias_beta))
        words = source.split()
        out = []
        for i, raw in enumerate(words):
            w = raw[:-1] if len(raw) > 1 and raw.endswith(".") else raw  # "runs." reads as "runs" "."
            if w.lower() == "a":
                out.append("eine" if any(x.rstrip(".") == "woman" for x in words[i + 1 :]) else "ein")
            else:
                out.append(LEXICON.get(w.lower(), w.upper()))
            if w != raw:
                out.append(".")
        if target_prefix and not prefix_bias_beta:
            pre = target_prefix.split()
            out = pre + out[len(pre) :]
        return " ".join(out)


@dataclass
class LexiconContinuer(LexiconTranslator):
    """The lexicon 'model' continuing a forced prefix by at most ``max_new_tokens`` words (one token = one word)."""

    def continue_prefix(
        self, source: str, target_prefix: str, *, beam_size: int = 1, max_new_tokens: int = 8
    ) -> tuple[str, bool]:
        full = self.translate_sentence(source, beam_size=beam_size, target_prefix=target_prefix).split()
        if not source.rstrip().endswith("."):
            full.append(".")  # like a full-sentence model: every output ends a sentence
        budget = len(target_prefix.split()) + max_new_tokens
        return " ".join(full[:budget]), len(full) <= budget
