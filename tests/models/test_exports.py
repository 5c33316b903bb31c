"""``simulsub export``: each family's variants are written as loadable runtime directories and checked against
their source model (tiny random models; the fp32 graphs must reproduce the source exactly)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from models.exports import ExportCheck, compare, write_report  # noqa: E402
from tests.conftest import make_tiny_marian, multi30k_lines  # noqa: E402

SOURCES = multi30k_lines("val.en", 4)


def by_variant(checks: list[ExportCheck]) -> dict[str, ExportCheck]:
    return {c.variant: c for c in checks}


def test_compare_scores_identical_and_different_outputs() -> None:
    same = compare("nat", "fp32", Path("x"), ["ein Hund", "zwei Katzen"], ["ein Hund", "zwei Katzen"])
    assert same.identical == 1.0 and same.bleu_vs_source == 100.0 and same.passed
    off = compare("nat", "fp32", Path("x"), ["ein Hund läuft schnell", "zwei Katzen"], ["ein Baum", "zwei Katzen"])
    assert off.identical == 0.5 and off.bleu_vs_source < 97.0 and not off.passed


def test_nat_and_waitk_exports_reproduce_pytorch(tmp_path: Path) -> None:
    from models.exports import export_nat, export_waitk
    from models.nat.model import ModelConfig, NATModel
    from models.text.spm import train_joint_spm
    from models.waitk.model import WaitkConfig, WaitkModel

    texts = multi30k_lines("train.en", 300) + multi30k_lines("train.de", 300)
    spm_file = train_joint_spm(texts, tmp_path / "spm", vocab_size=200)
    torch.manual_seed(0)
    nat = NATModel(ModelConfig(vocab_size=200, d_model=32, heads=2, ffn_dim=64, encoder_layers=1, decoder_layers=1,
                               max_positions=128, dropout=0.0))
    checks = by_variant(export_nat(nat, spm_file, tmp_path / "out", SOURCES))
    assert set(checks) == {"fp32", "int8", "fp16"}
    assert checks["fp32"].identical == 1.0 and checks["fp16"].passed
    assert (tmp_path / "out" / "nat-en-de" / "model_int8.onnx").is_file()
    assert (tmp_path / "out" / "nat-en-de-fp16" / "model.onnx").is_file()
    wk = WaitkModel(WaitkConfig(vocab_size=201, d_model=32, heads=2, ffn_dim=64, encoder_layers=1,
                                decoder_layers=1, dropout=0.0, max_positions=128))
    wchecks = by_variant(export_waitk(wk, spm_file, tmp_path / "out", SOURCES))
    assert wchecks["fp32"].identical == 1.0 and wchecks["fp16"].passed
    report = write_report([*checks.values(), *wchecks.values()], tmp_path / "out")
    assert '"passed": true' in report.read_text()


def test_marian_ct2_exports_match_transformers_greedy(tmp_path: Path) -> None:
    from models.exports import export_marian

    _, model, spm_file = make_tiny_marian(tmp_path, pieces=300, max_positions=64)
    checks = by_variant(export_marian(model, spm_file, tmp_path / "out", SOURCES))
    # float16 weights run as float32 on a CPU: the same search (a random model runs into the length limit, where
    # the two count the last token differently, so the outputs agree up to their very end)
    assert checks["float16"].bleu_vs_source > 95.0
    assert checks["int8"].passed
    assert (tmp_path / "out" / "marian-en-de-int8" / "model.bin").is_file()


def test_export_cli_reports_missing_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    code = main(["export", "--families", "nat,waitk", "--work-root", str(tmp_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "nothing exported" in err and "no epoch checkpoints" in err and "Traceback" not in err
    code = main(["export", "--families", "gpt9"])
    assert code == 2 and "unknown model family" in capsys.readouterr().err


def test_paraformer_export_reproduces_pytorch(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    import numpy as np

    from models.asr.frontend import Cmvn
    from models.asr.tokens import TokenList
    from models.exports import export_paraformer
    from tests.conftest import TINY_TOKENS, chirp, tiny_model

    rng = np.random.default_rng(0)
    cmvn = Cmvn.from_stats(rng.uniform(5, 10, 560).astype(np.float32), rng.uniform(2, 4, 560).astype(np.float32))
    wavs = [chirp(2.0, seed=s) for s in range(3)]
    checks = by_variant(export_paraformer(tiny_model(), TokenList(list(TINY_TOKENS)), cmvn, tmp_path / "out", wavs))
    assert set(checks) == {"fp32", "int8", "fp16"}
    assert checks["fp32"].identical == 1.0 and checks["fp16"].passed
    assert (tmp_path / "out" / "paraformer-en" / "model_quant.onnx").is_file()
    assert (tmp_path / "out" / "paraformer-en-fp16" / "stream_encoder.onnx").is_file()
