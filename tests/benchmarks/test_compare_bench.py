"""benchmarks.compare_bench: deterministic figures must match exactly; timed ones are only shown."""

import copy
import json
from pathlib import Path

from benchmarks.compare_bench import compare, main

BENCH = {"text": {"reta beam 1": {"BLEU": 36.3, "AL": 2.43, "NE": 1.58, "AL_CA": 2.5, "compute_ms_per_sentence": 60.0}},
         "speech": {"reta beam 1": {"BLEU": 31.8, "AL": 1069.6, "WER": 4.7, "rtf": 0.04}},
         "asr": {"offline_WER": 5.29, "streaming_WER": 5.29}}


def test_timed_figures_may_differ_but_deterministic_ones_may_not(tmp_path: Path) -> None:
    after = copy.deepcopy(BENCH)
    after["text"]["reta beam 1"]["compute_ms_per_sentence"] = 80.0  # measured time: not compared
    after["speech"]["reta beam 1"]["rtf"] = 0.05
    assert compare(BENCH, after)["identical"]
    changed = copy.deepcopy(after)
    changed["text"]["reta beam 1"]["BLEU"] = 36.31
    result = compare(BENCH, changed)
    assert not result["identical"] and abs(result["max_gap"] - 0.01) < 1e-9
    b, a = tmp_path / "b.json", tmp_path / "a.json"
    b.write_text(json.dumps(BENCH)), a.write_text(json.dumps(changed))
    assert main([str(b), str(a), "--out", str(tmp_path / "cmp")]) == 1
    assert "CHANGED" in (tmp_path / "cmp.md").read_text()
    a.write_text(json.dumps(after))
    assert main([str(b), str(a)]) == 0


def test_a_system_missing_after_is_a_change() -> None:
    after = copy.deepcopy(BENCH)
    del after["speech"]["reta beam 1"]
    assert not compare(BENCH, after)["identical"]
