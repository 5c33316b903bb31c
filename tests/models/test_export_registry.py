"""The exporter registry: every family registered, one ``export`` signature, clear errors for unknown families."""

from __future__ import annotations

import argparse
import importlib
import inspect
from pathlib import Path

import pytest

from models.export_registry import (
    ExporterSpec,
    ModelExporter,
    NoCheckedExportError,
    UnknownFamilyError,
    checked_families,
    exporter_families,
    get_exporter,
    register_exporter,
    unregister_exporter,
)
from models.exports import ExportCheck, ExportOptions

FAMILIES = ("marian", "nat", "waitk", "paraformer", "llm", "wparaformer")


def test_every_family_is_registered_and_simulsub_export_checks_the_same_ones_as_before() -> None:
    assert set(exporter_families()) == set(FAMILIES)
    assert checked_families() == ("marian", "nat", "waitk", "paraformer", "llm")


def test_unknown_families_are_clear_errors() -> None:
    with pytest.raises(UnknownFamilyError, match=r"unknown model family 'gpt9'; choose from marian, nat, waitk"):
        get_exporter("gpt9")
    with pytest.raises(ValueError, match="already registered"):
        register_exporter(get_exporter("nat"))
    with pytest.raises(NoCheckedExportError, match="wparaformer has no checked export"):
        get_exporter("wparaformer").run_check(None)  # type: ignore[arg-type]


def test_cli_refuses_unknown_and_unchecked_families() -> None:
    from app.commands.export import selected_families
    from app.errors import UserError

    assert selected_families(" nat, waitk ") == ("nat", "waitk")
    with pytest.raises(UserError, match="unknown model family gpt9; choose from marian, nat, waitk, paraformer, llm"):
        selected_families("nat,gpt9")
    with pytest.raises(UserError, match="unknown model family \\(none\\)"):
        selected_families(" , ")
    with pytest.raises(UserError, match="wparaformer has no checked export here"):
        selected_families("wparaformer")


TOY_CALLS: list[Path] = []


def toy_check(opts: ExportOptions) -> list[ExportCheck]:
    """A registered family's check: what ``simulsub export --families toy`` runs."""
    TOY_CALLS.append(opts.out_dir)
    return [ExportCheck("toy", "int8", str(opts.out_dir / "toy"), 2, 1.0, 100.0, 60.0)]


def test_a_registered_family_is_dispatched_by_simulsub_export(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from app.commands import export

    register_exporter(ExporterSpec("toy", "a toy family", "models.nat.export:NatExporter", f"{__name__}:toy_check"))
    try:
        parser = argparse.ArgumentParser()
        export.add_parser(parser.add_subparsers())
        args = parser.parse_args(["export", "--families", "toy", "--out", str(tmp_path / "o")])
        assert args.run(args) == 0
        assert [tmp_path / "o"] == TOY_CALLS and (tmp_path / "o" / "export.json").is_file()
        assert "toy" in capsys.readouterr().out
    finally:
        unregister_exporter("toy")
    assert "toy" not in exporter_families()


@pytest.mark.parametrize("family", FAMILIES)
def test_every_exporter_has_the_one_signature(family: str) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    spec = get_exporter(family)
    cls = spec.exporter_class()
    assert cls.family == family
    assert inspect.signature(cls.export) == inspect.signature(ModelExporter.export)
    assert "int8" in cls.quantizations  # every family writes int8 weights (the shared default)
    if spec.check is not None:
        module, _, name = spec.check.partition(":")
        assert callable(getattr(importlib.import_module(module), name))


def test_exporters_refuse_to_overwrite_and_check_quantization(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from models.nat.export import NatExporter
    from models.nat.model import ModelConfig, NATModel
    from models.text.spm import train_joint_spm
    from models.waitk.export import WaitkExporter
    from models.waitk.model import WaitkConfig, WaitkModel
    from tests.conftest import make_tiny_marian, multi30k_lines

    spm_file = train_joint_spm(multi30k_lines("train.en", 200) + multi30k_lines("train.de", 200), tmp_path / "spm",
                               vocab_size=120)
    torch.manual_seed(0)
    nat = NatExporter(NATModel(ModelConfig(vocab_size=120, d_model=16, heads=2, ffn_dim=32, encoder_layers=1,
                                           decoder_layers=1, max_positions=64, dropout=0.0)), spm_file)
    wk = WaitkExporter(WaitkModel(WaitkConfig(vocab_size=121, d_model=16, heads=2, ffn_dim=32, encoder_layers=1,
                                              decoder_layers=1, dropout=0.0, max_positions=64)), spm_file)
    from models.marian.export import MarianExporter

    _, marian_model, marian_spm = make_tiny_marian(tmp_path / "m", pieces=150, max_positions=32)
    marian = MarianExporter(marian_model, marian_spm)
    exporters: list[ModelExporter] = [nat, wk, marian]
    for exp in exporters:
        out = exp.export(tmp_path / exp.family, quantization="int8")
        assert out == tmp_path / exp.family and any(out.iterdir())
        with pytest.raises(FileExistsError, match="force=True"):
            exp.export(out)
        exp.export(out, force=True)
        with pytest.raises(ValueError, match=rf"{exp.family} export: quantization must be one of"):
            exp.export(tmp_path / "other", quantization="int3")
    assert (tmp_path / "nat" / "model_int8.onnx").is_file() and (tmp_path / "waitk" / "decoder_int8.onnx").is_file()
    fp32 = nat.export(tmp_path / "nat-fp32", quantization=None)
    assert not (fp32 / "model_int8.onnx").exists()
