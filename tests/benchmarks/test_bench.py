"""``simulsub bench`` end to end on a few sentences and recordings (tiny ASR): the report has every section."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("silero_vad", reason="silero-vad is installed by make setup")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (make setup installs it)")
def test_bench_writes_report_json_and_plots(tiny_export: tuple[Path, Any], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.suite import BenchOptions, run_bench

    monkeypatch.setenv("SIMULSUB_ASR_MODEL", str(tiny_export[0]))
    opts = BenchOptions(quick=True, out=tmp_path / "BENCHMARKS.md", results_dir=tmp_path / "results",
                        cache_dir=tmp_path / "cache", text_limit=3, speech_limit=2)
    result = run_bench(opts)
    assert {"reta beam 4", "reta beam 1", "fretna", "waitk k=3", "waitk k=5", "waitk k=7"} <= set(result["text"])
    assert set(result["speech"]) == set(result["text"])
    assert result["asr"]["utterances"] == 2 and result["asr"]["offline_rtf"] > 0
    md = opts.out.read_text(encoding="utf-8")
    for heading in ("## Text: 3 sentences", "## Speech: 2 recordings", "## ASR alone", "| cpu |", "compute vs fretna"):
        assert heading in md
    assert (tmp_path / "results" / "bench_quality_latency.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "results" / "bench.json").read_text())["n_text"] == 3


def test_speech_to_text_bleu_share_only_for_the_same_sentences() -> None:
    from benchmarks.report import speech_table

    speech = {"reta beam 4": {"BLEU": 30.0, "WER": 5.0, "AL": 1200.0, "LAAL": 1300.0, "LAAL_CA": 1500.0, "NE": 1.0,
                              "rtf": 0.1}}
    text = {"reta beam 4": {"BLEU": 40.0}}
    assert speech_table(speech, text)[-1].endswith("| 75 % |")
    assert speech_table(speech, text, comparable=False)[-1].endswith("| – |")
