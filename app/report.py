"""Readable summaries for the CLI's own output."""

from __future__ import annotations

from collections.abc import Mapping

ORDER = ("n", "BLEU", "chrF", "WER", "AL", "LAAL", "DAL", "AP", "AL_CA", "LAAL_CA", "DAL_CA", "AP_CA", "NE",
         "compute_ms_per_sentence", "compute_ms_per_update", "rtf")


def print_summary(title: str, scores: Mapping[str, object]) -> None:
    """Print ``scores`` as an aligned two-column table, known metrics first."""
    keys = [k for k in ORDER if k in scores] + sorted(k for k in scores if k not in ORDER)
    print(title)
    width = max((len(k) for k in keys), default=0)
    for k in keys:
        v = scores[k]
        if isinstance(v, float):
            shown = str(int(v)) if v.is_integer() else f"{v:.3f}"
        else:
            shown = str(v)
        print(f"  {k:<{width}}  {shown}")


def json_ready(scores: Mapping[str, object]) -> dict[str, object]:
    """Scores for a JSON summary line: counts as ints, measures at full precision (a script that compares
    our figures with SimulEval's to 1e-6 must not meet our rounding; the terminal summary rounds)."""
    return {k: int(v) if k == "n" and isinstance(v, float) else v for k, v in scores.items()}
