"""ASR profiles and model-directory detection (app.asr)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.asr import DEFAULT_ASR_DIR, EDGE_ASR_DIR, resolve_asr
from app.errors import UserError


def test_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIMULSUB_ASR_MODEL", raising=False)
    if (DEFAULT_ASR_DIR / "config.yaml").is_file():
        assert resolve_asr("default").kind == "whisper-paraformer"
    else:  # until a Whisper-Paraformer head is bundled, the default is the edge model
        assert resolve_asr("default").model_dir == EDGE_ASR_DIR
    assert resolve_asr("edge").model_dir == EDGE_ASR_DIR
    assert resolve_asr("edge").kind == "paraformer"
    w = resolve_asr("whisper")
    assert w.kind == "whisper-ar" and w.model_dir is None
    with pytest.raises(UserError, match="unknown ASR profile"):
        resolve_asr("huge")


def test_directory_kinds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIMULSUB_ASR_MODEL", raising=False)
    wp = tmp_path / "wp"
    wp.mkdir()
    (wp / "config.yaml").write_text("simulsub:\n  input: whisper-encoder\n")
    assert resolve_asr("edge", wp).kind == "whisper-paraformer"
    ct2 = tmp_path / "ct2"
    ct2.mkdir()
    (ct2 / "model.bin").write_bytes(b"x")
    (ct2 / "config.json").write_text(json.dumps({"alignment_heads": [[1, 1]], "lang_ids": [1]}))
    assert resolve_asr("default", ct2).kind == "whisper-ar"
    para = tmp_path / "para"
    para.mkdir()
    (para / "config.yaml").write_text("model: Paraformer\n")
    assert resolve_asr("default", para).kind == "paraformer"
    monkeypatch.setenv("SIMULSUB_ASR_MODEL", str(ct2))
    assert resolve_asr("edge").kind == "whisper-ar"
    with pytest.raises(UserError, match="does not exist"):
        resolve_asr("default", tmp_path / "missing")
