"""What a run cost and how late its captions were: real-time factors and mean caption latency (I/O-free).

Every driver reports the same few figures about a run over ``audio_ms`` of audio (ms of the 16 kHz stream):

- ``rtf``: model compute (ms) per ms of audio (< 1: faster than real time);
- ``wall_rtf``: wall-clock time of the whole run (ms, decoding and I/O included) per ms of audio;
- ``mean_latency_ms``: the mean ``latency_ms`` of the caption events shown (computation-aware lag, ms).

A run without audio (a text session, an empty file) has no real-time factor: ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def real_time_factor(spent_ms: float, audio_ms: float) -> float | None:
    """``spent_ms`` (compute or wall time) per ms of audio; None without audio (``audio_ms`` ≤ 0). A ratio: any
    one unit for both works (seconds per second)."""
    return spent_ms / audio_ms if audio_ms > 0 else None


def mean_latency_ms(latencies_ms: Sequence[float]) -> float | None:
    """The mean of caption latencies (ms); None when no caption was shown."""
    return float(np.mean(latencies_ms)) if len(latencies_ms) else None


def rounded(value: float | None, digits: int) -> float | None:
    """``round(value, digits)``, keeping None (for summaries whose figures may be undefined)."""
    return None if value is None else round(value, digits)



def median_and_p95(latencies_ms: Sequence[float]) -> tuple[float, float]:
    """The median and 95th percentile of caption latencies (ms); NaN for both when no caption was shown."""
    if not len(latencies_ms):
        return float("nan"), float("nan")
    lat = np.asarray(latencies_ms, dtype=np.float64)
    return float(np.median(lat)), float(np.percentile(lat, 95))
