"""Continuous integrate-and-fire (CIF), the token-boundary rule of Paraformer, in plain numpy.

The predictor gives every encoder frame a weight ``alpha`` in [0, 1] (one LFR frame = 60 ms of 16 kHz audio
for FunASR models). CIF walks the frames, adding weights until the sum reaches the threshold (1.0); the frame
that crosses it is split: the part that completes the current token goes to that token, the remainder starts
the next one. Each fired token's embedding is the alpha-weighted sum of the encoder frames it covers.

At the end of the input a tail weight (0.45) is added on a zero frame, so a token that is more than half
complete (leftover ≥ 0.55) still fires. In streaming, :class:`CifState` carries the leftover weight and the
partial embedding from one chunk to the next; the tail is added only by :func:`cif_finish`. Feeding the
frames chunk by chunk gives exactly the tokens of one offline pass over the same frames.

No I/O and no torch here: the runtime and the tests drive it with arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_THRESHOLD = 1.0
DEFAULT_TAIL = 0.45


@dataclass
class CifState:
    """What CIF carries between chunks: the weight integrated towards the next token and its partial embedding.

    ``frames`` counts the encoder frames consumed so far, so fire positions are absolute frame indices.
    """

    dim: int
    weight: float = 0.0
    partial: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    frames: int = 0

    def __post_init__(self) -> None:
        if self.partial.size == 0:
            self.partial = np.zeros(self.dim, dtype=np.float32)
        if self.partial.shape != (self.dim,):
            raise ValueError(f"partial embedding has shape {self.partial.shape}, expected ({self.dim},)")

    def copy(self) -> CifState:
        return CifState(dim=self.dim, weight=self.weight, partial=self.partial.copy(), frames=self.frames)


@dataclass(frozen=True)
class CifOutput:
    """Tokens fired by one call: embeddings ``[N, D]`` and the absolute index of the frame that fired each."""

    embeddings: np.ndarray
    positions: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.positions)


def cif_step(
    alphas: np.ndarray, hidden: np.ndarray, state: CifState, *, threshold: float = DEFAULT_THRESHOLD
) -> CifOutput:
    """Integrate ``alphas`` ``[T]`` over ``hidden`` ``[T, D]`` starting from ``state`` (updated in place).

    A frame whose weight completes more than one token (only possible when alpha > threshold) fires several.
    """
    alphas = np.asarray(alphas, dtype=np.float32).reshape(-1)
    hidden = np.asarray(hidden, dtype=np.float32)
    if hidden.ndim != 2 or hidden.shape[0] != alphas.shape[0] or hidden.shape[1] != state.dim:
        raise ValueError(f"hidden shape {hidden.shape} does not match {alphas.shape[0]} alphas of dim {state.dim}")
    fired: list[np.ndarray] = []
    positions: list[int] = []
    weight = float(state.weight)
    partial = state.partial.astype(np.float32, copy=True)
    for t in range(alphas.shape[0]):
        a = float(alphas[t])
        h = hidden[t]
        while weight + a >= threshold:
            need = threshold - weight
            fired.append(partial + np.float32(need) * h)
            positions.append(state.frames + t)
            a -= need
            weight = 0.0
            partial = np.zeros_like(partial)
        weight += a
        partial = partial + np.float32(a) * h
    state.weight = weight
    state.partial = partial
    state.frames += alphas.shape[0]
    emb = np.stack(fired).astype(np.float32) if fired else np.zeros((0, state.dim), dtype=np.float32)
    return CifOutput(embeddings=emb, positions=tuple(positions))


def cif_finish(
    state: CifState, *, tail: float = DEFAULT_TAIL, threshold: float = DEFAULT_THRESHOLD
) -> CifOutput:
    """End of input: integrate one zero frame of weight ``tail``; fires the last token if it is complete enough.

    The state is reset afterwards (weight 0, zero partial embedding), ready for the next segment.
    """
    out = cif_step(
        np.array([tail], dtype=np.float32), np.zeros((1, state.dim), dtype=np.float32), state, threshold=threshold
    )
    state.weight = 0.0
    state.partial = np.zeros(state.dim, dtype=np.float32)
    return out


def cif_offline(
    alphas: np.ndarray,
    hidden: np.ndarray,
    *,
    tail: float = DEFAULT_TAIL,
    threshold: float = DEFAULT_THRESHOLD,
) -> CifOutput:
    """One pass over a whole utterance: :func:`cif_step` then :func:`cif_finish` (``tail=0`` for no tail)."""
    hidden = np.asarray(hidden, dtype=np.float32)
    state = CifState(dim=hidden.shape[1])
    body = cif_step(alphas, hidden, state, threshold=threshold)
    if tail <= 0:
        return body
    end = cif_finish(state, tail=tail, threshold=threshold)
    return concat_outputs([body, end], dim=hidden.shape[1])


def concat_outputs(outputs: list[CifOutput], *, dim: int) -> CifOutput:
    """Join the tokens of successive chunks."""
    embs = [o.embeddings for o in outputs if len(o)]
    emb = np.concatenate(embs, axis=0) if embs else np.zeros((0, dim), dtype=np.float32)
    return CifOutput(embeddings=emb, positions=tuple(p for o in outputs for p in o.positions))


def expected_token_count(
    alphas: np.ndarray, *, tail: float = DEFAULT_TAIL, threshold: float = DEFAULT_THRESHOLD
) -> int:
    """How many tokens one offline pass fires: ``floor((Σ alpha + tail) / threshold)``."""
    return int(np.floor((float(np.sum(alphas, dtype=np.float64)) + tail) / threshold + 1e-6))
