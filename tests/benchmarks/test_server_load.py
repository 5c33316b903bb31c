"""benchmarks/server_load.py's report: one capacity table per server configuration and a summary across them."""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.server_load import MODES, plot, plot_spread, render_markdown, render_spread, rss_mb


def row(k: int, p95: float | None) -> dict[str, object]:
    return {"K": k, "clients_ok": k, "events": 10 * k, "p50_s": None if p95 is None else p95 / 2, "p95_s": p95,
            "max_s": p95, "rss_idle_mb": 200.0, "rss_peak_mb": 210.0, "mb_per_session": 1.0}


def _result(procs_rows: list[dict[str, object]], procs_cap: int) -> dict[str, object]:
    return {
        "meta": {"policy": "reta", "asr_profile": "default", "workers": 2, "cpus": 2, "delay_limit_s": 1.0,
                 "seconds_per_client": 40.0,
                 "command": "python -m benchmarks.server_load --modes unbatched,batched-2procs"},
        "modes": {
            "unbatched": {"batching": "off", "serve_options": [], "max_realtime_sessions": 16,
                          "capacity": [row(16, 0.2), row(24, 3.5)]},
            "batched-2procs": {"batching": "on", "serve_options": ["--procs", "2"],
                               "max_realtime_sessions": procs_cap, "capacity": procs_rows},
        },
        "soak_rss_mb": [],
    }


def test_repeated_runs_show_their_spread(tmp_path: Path) -> None:
    runs = [_result([row(16, 0.2), row(24, 0.6), row(32, 2.0)], 24), _result([row(16, 0.2), row(24, 1.5)], 16)]
    combined = {"command": "python -m benchmarks.server_load --combine a.json,b.json", "runs": runs}
    text = "\n".join(render_spread(combined))
    assert "| configuration | run 1 | run 2 | min–max |" in text
    assert "| batched-2procs | **24** | **16** | 16–24 |" in text
    assert "| unbatched | **16** | **16** | 16–16 |" in text
    assert "| 32 | 2.00 | – |" in text and "| 24 | 0.60 | 1.50 |" in text
    plot_spread(combined, tmp_path / "spread.png")
    assert (tmp_path / "spread.png").stat().st_size > 1000


def test_report_compares_the_configurations(tmp_path: Path) -> None:
    result = {
        "meta": {"policy": "reta", "asr_profile": "default", "workers": 2, "cpus": 2, "delay_limit_s": 1.0,
                 "command": "python -m benchmarks.server_load --modes unbatched,batched-2procs"},
        "modes": {
            "unbatched": {"batching": "off", "serve_options": [], "max_realtime_sessions": 16,
                          "capacity": [row(16, 0.2), row(24, 3.5)]},
            "batched-2procs": {"batching": "on", "serve_options": ["--procs", "2"], "max_realtime_sessions": 24,
                               "capacity": [row(16, 0.2), row(24, 0.6), row(32, 2.0)]},
        },
        "soak_rss_mb": [],
    }
    lines = render_markdown(result, soak_minutes=0)
    text = "\n".join(lines)
    assert "| unbatched | `--batching off` | **16** |" in text
    assert "| batched-2procs | `--batching on --procs 2` | **24** |" in text
    assert "## batched-2procs (`--batching on` --procs 2)" in text
    assert text.count("| 24 |") == 2 and "| 32 | 1.00 | 2.00 |" in text
    plot(result, tmp_path / "load.png")
    assert (tmp_path / "load.png").stat().st_size > 1000
    assert set(MODES) >= {"unbatched", "batched", "batched-2procs"}


def test_memory_counts_the_process_tree() -> None:
    own = rss_mb(os.getpid())
    assert own > 10  # a Python process with numpy loaded
