"""CLI behaviour on good and bad input: translate, replay-text, score (no tracebacks, one-line errors)."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import pytest

from app.cli import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str], stdin: str | None = None,
            monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_translate_one_line_per_input_line(tiny_marian_dir, capsys, monkeypatch):
    code, out, err = run_cli(["translate", "--model", str(tiny_marian_dir), "--beam", "2"], capsys,
                             "A man walks.\nTwo dogs play in the snow.\nHello\n", monkeypatch)
    assert code == 0, err
    assert len(out.splitlines()) == 3


@pytest.mark.parametrize(
    ("stdin", "message"),
    [("A man.\n\nA dog.\n", "line 2 is empty"), ("", "stdin is empty")],
)
def test_translate_rejects_bad_stdin(tiny_marian_dir, capsys, monkeypatch, stdin, message):
    code, out, err = run_cli(["translate", "--model", str(tiny_marian_dir)], capsys, stdin, monkeypatch)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_translate_sentence_over_model_limit(tiny_marian_dir, capsys, monkeypatch):
    long = " ".join(["elephant"] * 100)
    code, _, err = run_cli(["translate", "--model", str(tiny_marian_dir)], capsys, f"A dog.\n{long}\n", monkeypatch)
    assert code == 2 and "line 2" in err and "limit of 64" in err


def test_translate_missing_model_dir(tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(["translate", "--model", str(tmp_path / "nope")], capsys, "A.\n", monkeypatch)
    assert code == 2 and "does not exist" in err
    code, _, err = run_cli(["translate", "--model", str(tmp_path)], capsys, "A.\n", monkeypatch)
    assert code == 2 and "missing: model.bin" in err


def test_replay_text_reta_writes_simuleval_log_and_json(tiny_marian_dir, tmp_path, capsys):
    src = tmp_path / "src.en"
    ref = tmp_path / "ref.de"
    src.write_text("A man walks.\nTwo dogs play in the snow.\n", encoding="utf-8")
    ref.write_text("Ein Mann geht.\nZwei Hunde spielen im Schnee.\n", encoding="utf-8")
    log = tmp_path / "out.jsonl"
    code, out, err = run_cli(["replay-text", "--source", str(src), "--reference", str(ref), "--policy", "reta",
                              "--model", str(tiny_marian_dir), "--beam", "1", "--mask-k", "1",
                              "--log", str(log), "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    for key in ("n", "BLEU", "chrF", "AL", "LAAL", "DAL", "AP", "NE", "compute_ms_per_sentence",
                "compute_ms_per_update", "AL_CA", "LAAL_CA"):
        assert key in summary, key
    assert summary["n"] == 2
    lines = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()]
    assert [x["index"] for x in lines] == [0, 1]
    assert lines[1]["source_length"] == 6
    for x in lines:
        assert len(x["delays"]) == x["prediction_length"] == len(x["prediction"].split())
        assert all(1 <= d <= x["source_length"] for d in x["delays"])
        assert all(e >= d for e, d in zip(x["elapsed"], x["delays"], strict=False))
        assert x["revisions"][-1] == x["prediction"]
    # the log re-scores to the same numbers
    code, out2, _ = run_cli(["score", str(log), "--json"], capsys)
    again = json.loads(out2.strip().splitlines()[-1])
    assert again["AL"] == summary["AL"] and again["BLEU"] == summary["BLEU"] and again["NE"] == summary["NE"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), ("", "is empty"), ("A man.\n\nA dog.\n", "line 2 is empty")],
)
def test_replay_text_bad_source(tiny_marian_dir, tmp_path, capsys, content, message):
    src = tmp_path / "src.en"
    if content is not None:
        src.write_text(content, encoding="utf-8")
    code, _out, err = run_cli(["replay-text", "--source", str(src), "--model", str(tiny_marian_dir)], capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_replay_text_reference_count_mismatch(tiny_marian_dir, tmp_path, capsys):
    src, ref = tmp_path / "s", tmp_path / "r"
    src.write_text("A.\nB.\n", encoding="utf-8")
    ref.write_text("A.\n", encoding="utf-8")
    code, _, err = run_cli(["replay-text", "--source", str(src), "--reference", str(ref),
                            "--model", str(tiny_marian_dir)], capsys)
    assert code == 2 and "has 1 lines but" in err


def test_replay_text_sentence_over_limit(tiny_marian_dir, tmp_path, capsys):
    src = tmp_path / "s"
    src.write_text("A dog.\n" + " ".join(["elephant"] * 100) + "\n", encoding="utf-8")
    code, _, err = run_cli(["replay-text", "--source", str(src), "--model", str(tiny_marian_dir)], capsys)
    assert code == 2 and "line 2" in err and "limit" in err


def write_log(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_score_hand_worked_log(tmp_path, capsys):
    log = write_log(tmp_path / "l.jsonl", [
        {"prediction": "a b c d", "delays": [1, 2, 3, 4], "elapsed": [2, 3, 4, 5], "source_length": 4,
         "reference": "a b c d"},
        {"prediction": "", "delays": [], "elapsed": [], "source_length": 3, "reference": "x y"},
        {"prediction": "a b c d", "delays": [2, 4, 4, 4], "elapsed": [3, 5, 5, 5], "source_length": 4,
         "reference": "a b c d"},
    ])
    code, out, _ = run_cli(["score", str(log), "--json"], capsys)
    assert code == 0
    s = json.loads(out.strip().splitlines()[-1])
    assert s["AL"] == pytest.approx(1.75) and s["AL_CA"] == pytest.approx(2.75)
    assert {"LAAL", "DAL", "AP", "LAAL_CA", "DAL_CA", "AP_CA", "BLEU"} <= set(s)


def test_score_without_elapsed_or_reference_omits_those(tmp_path, capsys):
    log = write_log(tmp_path / "l.jsonl", [{"prediction": "a b", "delays": [1, 2], "source_length": 2}])
    code, out, _ = run_cli(["score", str(log), "--json", "--source-type", "speech"], capsys)
    s = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and "AL_CA" not in s and "BLEU" not in s and s["AL"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("row", "message"),
    [("{not json", "not valid JSON"), ({"delays": [1], "source_length": 1}, "missing field 'prediction'"),
     ({"prediction": "a b", "delays": [1], "source_length": 2}, "1 delays for 2 prediction words"),
     ({"prediction": "a", "delays": ["x"], "source_length": 2}, "'delays' must be a list of numbers"),
     ({"prediction": "a", "delays": [1], "source_length": 0}, "positive"), ("[1, 2]", "JSON object")],
)
def test_score_malformed_line(tmp_path, capsys, row, message):
    good = {"prediction": "a", "delays": [1], "source_length": 1}
    log = write_log(tmp_path / "l.jsonl", [good, row])
    code, _out, err = run_cli(["score", str(log)], capsys)
    assert code == 2 and ":2:" in err and message in err and "Traceback" not in err


def test_score_missing_and_empty_log(tmp_path, capsys):
    code, _, err = run_cli(["score", str(tmp_path / "none.jsonl")], capsys)
    assert code == 2 and "does not exist" in err
    empty = tmp_path / "e.jsonl"
    empty.write_text("", encoding="utf-8")
    code, _, err = run_cli(["score", str(empty)], capsys)
    assert code == 2 and "is empty" in err


def test_replay_text_waitk_never_revises(tiny_marian_dir, tmp_path, capsys):
    src = tmp_path / "src.en"
    src.write_text("A man walks down the street.\nTwo dogs play in the snow.\n", encoding="utf-8")
    log = tmp_path / "w.jsonl"
    code, out, err = run_cli(["replay-text", "--source", str(src), "--policy", "waitk", "--k", "2", "--beam", "1",
                              "--model", str(tiny_marian_dir), "--log", str(log), "--json"], capsys)
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["NE"] == 0
    for row in map(json.loads, log.read_text(encoding="utf-8").splitlines()):
        revs = row["revisions"]
        assert all(b.split()[: len(a.split())] == a.split() for a, b in itertools.pairwise(revs))
    code, _, err = run_cli(["replay-text", "--source", str(src), "--policy", "waitk", "--k", "0",
                            "--model", str(tiny_marian_dir)], capsys)
    assert code == 2 and "--k must be >= 1" in err


def test_score_json_keeps_full_precision(tmp_path, capsys):
    # AP = Σ delays / (|X| · |Y|) = (1 + 1 + 2) / (3 · 3) = 4/9: not representable in 4 decimals
    log = write_log(tmp_path / "l.jsonl", [
        {"prediction": "a b c", "delays": [1, 1, 2], "elapsed": [1, 2, 3], "source_length": 3, "reference": "a b c"},
    ])
    code, out, _ = run_cli(["score", str(log), "--json"], capsys)
    assert code == 0
    s = json.loads(out.strip().splitlines()[-1])
    assert s["AP"] == pytest.approx(4 / 9, abs=1e-12) and s["n"] == 1 and isinstance(s["n"], int)
