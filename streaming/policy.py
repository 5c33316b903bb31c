"""The policy protocol every simultaneous strategy implements (ReTA, FReTNA, wait-k, LLM)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from streaming.types import SourceState, TargetState


@runtime_checkable
class Policy(Protocol):
    """A deterministic state machine from source states to target states, one instance at a time.

    - ``reset()`` starts a new instance (sentence or segment).
    - ``update(source)`` is called whenever the source grows or is revised; it returns the current
      output. When ``source.finished`` is set, the output must be final.
    - ``finish()`` returns the final output for the last source seen (computing it if needed).
    """

    name: str

    def reset(self) -> None: ...

    def update(self, source: SourceState) -> TargetState: ...

    def finish(self) -> TargetState: ...
