"""Source and target states exchanged between the drivers, the policies and the caption state.

Source amounts are counted in source words for text streams and in milliseconds of 16 kHz audio
since stream start for speech streams.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SAMPLE_RATE = 16000  # Hz: every audio stream inside the cascade (drivers resample to it)


@dataclass(frozen=True)
class SourceState:
    """Everything read from the source so far.

    ``tokens`` are source words; ``amount`` is the source read (words for text, ms for speech);
    ``stable`` is how many leading tokens will not be revised any more (ASR partials may change their
    tail; text sources are always fully stable); ``finished`` marks the end of the sentence/segment.
    """

    tokens: tuple[str, ...]
    amount: float
    finished: bool = False
    stable: int = -1

    def __post_init__(self) -> None:
        if self.stable < 0:
            object.__setattr__(self, "stable", len(self.tokens))
        if self.stable > len(self.tokens):
            raise ValueError(f"stable={self.stable} exceeds {len(self.tokens)} tokens")

    @property
    def text(self) -> str:
        return " ".join(self.tokens)

    @property
    def stable_tokens(self) -> tuple[str, ...]:
        return self.tokens[: self.stable]


@dataclass(frozen=True)
class TargetState:
    """A policy's current output: target words (detokenised, whitespace-split).

    ``stable`` leading words are promised never to change; ``revision`` counts the policy's outputs
    for this instance (starting at 1); ``final`` is set once the source is finished and translated.
    """

    tokens: tuple[str, ...] = field(default_factory=tuple)
    stable: int = 0
    revision: int = 0
    final: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.stable <= len(self.tokens):
            raise ValueError(f"stable={self.stable} outside 0..{len(self.tokens)}")

    @property
    def text(self) -> str:
        return " ".join(self.tokens)


EMPTY_TARGET = TargetState()

# punctuation that ends a sentence (also CJK full-width forms)
SENTENCE_END = (".", "!", "?", "。", "！", "？")
