"""Caption state: what is displayed, every displayed revision with its time, and per-word delays.

The display hides the last ``mask_k`` words of non-final outputs (display mask-k). A new revision is
recorded whenever the displayed words change. The delay of final word i is the source read at the
first revision after which words 1..i were never displayed differently again (re-translation rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streaming.types import TargetState


def common_prefix_len(a: tuple[str, ...] | list[str], b: tuple[str, ...] | list[str]) -> int:
    """Number of leading equal items of ``a`` and ``b``."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass(frozen=True)
class Revision:
    """One displayed state: words shown, how many are stable, the source read (words or ms) and elapsed time."""

    words: tuple[str, ...]
    stable: int
    amount: float
    elapsed: float
    final: bool = False

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def to_json(self) -> dict[str, object]:
        return {"text": self.text, "stable": self.stable, "amount": self.amount,
                "elapsed": round(self.elapsed, 3), "final": self.final}


@dataclass
class CaptionState:
    """Displayed revisions of one instance (sentence or segment)."""

    mask_k: int = 0
    revisions: list[Revision] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mask_k < 0:
            raise ValueError("mask_k must be >= 0")

    def reset(self) -> None:
        self.revisions = []

    @property
    def displayed(self) -> tuple[str, ...]:
        return self.revisions[-1].words if self.revisions else ()

    def show(self, target: TargetState, *, amount: float, elapsed: float) -> Revision | None:
        """Display ``target`` (masked unless final); returns the new revision, or None if nothing changed."""
        words = target.tokens
        if not target.final and self.mask_k:
            words = words[: max(0, len(words) - self.mask_k)]
        stable = min(target.stable, len(words))
        last = self.revisions[-1] if self.revisions else None
        if last is not None and last.words == words and last.final == target.final:
            return None
        if last is None and not words and not target.final:
            return None
        rev = Revision(words=words, stable=stable, amount=amount, elapsed=elapsed, final=target.final)
        self.revisions.append(rev)
        return rev

    # -- measures over the displayed history ------------------------------------------------------
    @property
    def final_words(self) -> tuple[str, ...]:
        return self.displayed

    def word_timing(self) -> tuple[list[float], list[float]]:
        """(delays, elapsed) of each final word: taken at the first revision after which words 1..i never changed."""
        final = self.final_words
        n = len(final)
        delays, elapsed = [0.0] * n, [0.0] * n
        if n == 0:
            return [], []
        # lcp[r] = agreement of revision r with the final output; a word i is settled from revision r
        # on when every later revision agrees on words 1..i, i.e. min(lcp[r:]) >= i.
        suffix_min = n
        settled_at: list[int] = [len(self.revisions) - 1] * (n + 1)
        for r in range(len(self.revisions) - 1, -1, -1):
            suffix_min = min(suffix_min, common_prefix_len(self.revisions[r].words, final))
            for i in range(1, suffix_min + 1):
                settled_at[i] = r
        for i in range(1, n + 1):
            rev = self.revisions[settled_at[i]]
            delays[i - 1], elapsed[i - 1] = rev.amount, rev.elapsed
        return delays, elapsed

    def erased_words(self) -> int:
        """Words erased between successive displayed outputs (the numerator of Normalized Erasure)."""
        erased = 0
        prev: tuple[str, ...] = ()
        for rev in self.revisions:
            erased += len(prev) - common_prefix_len(prev, rev.words)
            prev = rev.words
        return erased
