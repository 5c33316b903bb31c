"""Simulated clock for computation-aware latency (SimulEval's unpaced simulation).

Elapsed time of an output = the source read when it was produced + the compute spent so far on the
instance. For speech both are milliseconds. For text the source is counted in words, so compute is
converted to words at a nominal speaking pace of ``word_ms`` milliseconds per word.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_WORD_MS = 400.0
"""Nominal pace for text streams: 400 ms per source word (150 words per minute)."""


def perf_ms() -> float:
    """Monotonic wall-clock in milliseconds (the default compute timer)."""
    return time.perf_counter() * 1000.0


@dataclass
class SimulatedClock:
    """Accumulates measured compute (ms) for one instance and turns source amounts into elapsed times.

    ``units_per_ms`` converts compute milliseconds into source units: 1.0 for speech (ms), 1/word_ms for text.
    """

    units_per_ms: float = 1.0
    timer: Callable[[], float] = field(default=perf_ms, repr=False)
    compute_ms: float = 0.0
    calls: int = 0

    @classmethod
    def for_text(cls, word_ms: float = DEFAULT_WORD_MS, timer: Callable[[], float] = perf_ms) -> SimulatedClock:
        if word_ms <= 0:
            raise ValueError("word_ms must be positive")
        return cls(units_per_ms=1.0 / word_ms, timer=timer)

    @classmethod
    def for_speech(cls, timer: Callable[[], float] = perf_ms) -> SimulatedClock:
        return cls(units_per_ms=1.0, timer=timer)

    def reset(self) -> None:
        self.compute_ms = 0.0
        self.calls = 0

    def add_compute(self, ms: float) -> None:
        self.compute_ms += ms
        self.calls += 1

    def elapsed(self, amount: float) -> float:
        """Computation-aware time of an output produced after reading ``amount`` source units."""
        return amount + self.compute_ms * self.units_per_ms
