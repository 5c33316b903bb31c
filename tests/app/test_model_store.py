"""``simulsub models``: pull from a local Hugging Face Hub cache (no network), import, convert, list, remove, names
and profiles on the command line, clear errors offline."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from app.run_profiles import expand_profile

pytest.importorskip("ctranslate2")


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *needles: str) -> None:
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert all(n in lines[0] for n in needles), err


@pytest.fixture(scope="module")
def hf_marian(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random Hugging Face Marian directory (weights + source.spm/target.spm/vocab.json), as on the Hub."""
    pytest.importorskip("torch")
    import torch

    from models.marian.export import MarianArch, build_model, save_hf
    from models.text.spm import train_joint_spm
    from tests.conftest import multi30k_lines

    out = tmp_path_factory.mktemp("hf-marian")
    spm_model = train_joint_spm(multi30k_lines("train.en", 300) + multi30k_lines("train.de", 300), out / "spm",
                                vocab_size=200)
    torch.manual_seed(0)
    model = build_model(MarianArch(vocab_size=201, d_model=32, encoder_layers=1, decoder_layers=1, heads=2,
                                   ffn_dim=64, max_positions=64)).eval()
    save_hf(model, spm_model, out / "hf")
    return out / "hf"


def hub_cache(root: Path, repo: str, files: Path, commit: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """The Hugging Face cache layout (models--ORG--NAME/refs/main + snapshots/COMMIT/...) of ``repo``."""
    base = root / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    shutil.copytree(files, base / "snapshots" / commit)
    return base


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "store"
    monkeypatch.setenv("SIMULSUB_MODELS", str(root))
    monkeypatch.delenv("SIMULSUB_OFFLINE", raising=False)
    yield root


def test_pull_from_the_local_hub_cache_then_translate_by_name(hf_marian: Path, store: Path,
                                                              capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    hub_cache(store / "hub", "Helsinki-NLP/opus-mt-en-de", hf_marian)
    code, out, err = cli(["models", "pull", "opus-mt-en-de", "--offline"], capsys)
    assert code == 0, err
    assert "installed opus-mt-en-de (mt, ct2-translation)" in out and "--model opus-mt-en-de" in out
    installed = store / "opus-mt-en-de"
    assert (installed / "model.bin").is_file() and (installed / "source.spm").is_file()
    manifest = json.loads((installed / "simulsub-model.json").read_text())
    assert manifest["source"] == "hf:Helsinki-NLP/opus-mt-en-de" and manifest["format"] == "ct2-translation"
    assert json.loads((installed / "simulsub.json").read_text())["quantization"] == "int8"

    code, out, err = cli(["models", "list", "--json"], capsys)
    listing = json.loads(out)
    assert {"where": "installed", "name": "opus-mt-en-de", "role": "mt", "format": "ct2-translation",
            "source": "hf:Helsinki-NLP/opus-mt-en-de"} in listing["models"]
    assert "opus-mt-en-de" not in [p["name"] for p in listing["pullable"]]
    assert any(m["where"] == "bundled" and m["name"] == "marian-en-de" for m in listing["models"])

    monkeypatch.setattr("sys.stdin", io.StringIO("A man walks.\nTwo dogs play.\n"))
    code, out, err = cli(["translate", "--model", "opus-mt-en-de", "--beam", "1"], capsys)
    assert code == 0, err
    assert len(out.splitlines()) == 2 and "▁" not in out

    code, _, err = cli(["models", "pull", "opus-mt-en-de", "--offline"], capsys)  # already there
    one_line_error(code, err, "already installed", "--force")
    code, out, err = cli(["models", "pull", "opus-mt-en-de", "--offline", "--force", "--quantization", "float32"],
                         capsys)
    assert code == 0, err
    assert json.loads((installed / "simulsub.json").read_text())["quantization"] is None
    code, out, _ = cli(["models", "remove", "opus-mt-en-de"], capsys)
    assert code == 0 and not installed.exists()


def test_offline_and_unknown_pulls_fail_in_one_line(store: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = cli(["models", "pull", "nllb-200-distilled-600M", "--offline"], capsys)
    one_line_error(code, err, "facebook/nllb-200-distilled-600M", "offline", "models import")
    monkeypatch.setenv("SIMULSUB_OFFLINE", "1")
    code, _, err = cli(["models", "pull", "hf:someone/some-model"], capsys)
    one_line_error(code, err, "someone/some-model", "offline")
    code, _, err = cli(["models", "pull", "no-such-model"], capsys)
    one_line_error(code, err, "unknown model", "opus-mt-en-de")
    code, _, err = cli(["models", "pull", "modelscope:iic/some-model", "--offline"], capsys)
    one_line_error(code, err, "iic/some-model")
    code, _, err = cli(["models", "remove", "nothing"], capsys)
    one_line_error(code, err, "no installed model")
    code, _, err = cli(["translate", "--model", "opus-mt-en-de"], capsys)
    one_line_error(code, err, "simulsub models pull opus-mt-en-de")


def test_import_converts_m2m100_and_languages_are_chosen_on_the_command_line(
        store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    from tests.models.marian.tiny_models import make_tiny_m2m100

    make_tiny_m2m100(tmp_path / "m2m")
    code, out, err = cli(["models", "import", str(tmp_path / "m2m" / "hf"), "--name", "tiny-m2m",
                          "--quantization", "float32"], capsys)
    assert code == 0, err
    vocab = json.loads((store / "tiny-m2m" / "shared_vocabulary.json").read_text())
    assert "__de__" in vocab and "__ru__" in vocab  # the language tokens survived the conversion
    from app.profiles import load_translator

    tr = load_translator("tiny-m2m", source_lang="en", target_lang="ru")
    raw = tr.translate_pieces([tr.encode_source("the dog runs")], keep_language_token=True)[0]
    assert raw[0] == "__ru__"
    monkeypatch.setattr("sys.stdin", io.StringIO("the dog runs\n"))
    code, out, err = cli(["translate", "--model", "tiny-m2m", "--source-lang", "en", "--target-lang", "xx"],
                         capsys)
    one_line_error(code, err, "xx")
    monkeypatch.setattr("sys.stdin", io.StringIO("the dog runs\n"))
    code, out, err = cli(["translate", "--model", "tiny-m2m", "--target-lang", "ru", "--beam", "1"], capsys)
    assert code == 0, err
    assert "__" not in out and "▁" not in out


def test_import_refuses_what_we_cannot_run(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnx")
    from tests.models.asr.test_funasr_online import make_online_dir

    online = make_online_dir(tmp_path / "online")
    code, _, err = cli(["models", "import", str(online)], capsys)
    one_line_error(code, err, "online (streaming) Paraformer export")
    assert not (store / online.name).exists()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("hello")
    code, _, err = cli(["models", "import", str(junk)], capsys)
    one_line_error(code, err, "no model files we know")
    code, _, err = cli(["models", "import", str(junk), "--name", "../evil"], capsys)
    one_line_error(code, err)


def test_import_copies_a_bundled_asr_and_convert_writes_ct2(store: Path, tmp_path: Path, hf_marian: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from app.asr import EDGE_ASR_DIR, resolve_asr

    code, out, err = cli(["models", "import", str(EDGE_ASR_DIR), "--name", "my-asr"], capsys)
    assert code == 0, err
    assert "--asr-model my-asr" in out
    choice = resolve_asr("default", "my-asr")
    assert choice.kind == "paraformer" and choice.model_dir == store / "my-asr"
    out_dir = tmp_path / "ct2"
    code, out, err = cli(["models", "convert", str(hf_marian), str(out_dir)], capsys)
    assert code == 0 and (out_dir / "model.bin").is_file() and (out_dir / "target.spm").is_file(), err
    code, _, err = cli(["models", "convert", str(hf_marian), str(out_dir)], capsys)
    one_line_error(code, err, "--force")


def test_profiles_set_options_the_user_did_not_give() -> None:
    flags: dict[str, Any] = {"replay": {"--asr-profile", "--policy", "--model", "--source-lang", "--target-lang",
                                        "--profile", "--beam"},
                             "translate": {"--model", "--source-lang", "--target-lang", "--profile", "--beam"}}
    argv = ["replay", "talk.flac", "--profile", "large", "--policy", "waitk"]
    assert expand_profile(argv, flags) == ["replay", "--asr-profile", "whisper", "--policy", "reta", "--model",
                                           "opus-mt-en-de", "talk.flac", "--profile", "large", "--policy", "waitk"]
    assert expand_profile(["translate", "--profile=multilingual"], flags) == [
        "translate", "--model", "nllb-200-distilled-600M", "--source-lang", "en", "--target-lang", "de",
        "--profile=multilingual"]  # only the options translate has
    assert expand_profile(["translate", "--beam", "2"], flags) == ["translate", "--beam", "2"]


def test_whisper_directories_import_as_ct2_whisper(store: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from app.asr import resolve_asr
    from models.asr.wparaformer.package import whisper_base_dir

    base = whisper_base_dir()  # the CTranslate2 Whisper-base that make setup installs
    hf = tmp_path / "hf-whisper"
    cfg = WhisperConfig(d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32)
    WhisperForConditionalGeneration(cfg).eval().save_pretrained(hf)
    shutil.copy(base / "tokenizer.json", hf / "tokenizer.json")
    code, out, err = cli(["models", "import", str(hf), "--name", "tiny-whisper"], capsys)
    assert code == 0 and "(asr, ct2-whisper)" in out, err
    assert resolve_asr("default", "tiny-whisper").kind == "whisper-ar"
    code, out, err = cli(["models", "import", str(base), "--name", "whisper-base"], capsys)
    assert code == 0 and "(asr, ct2-whisper)" in out, err
    assert (store / "whisper-base" / "model.bin").stat().st_size == (base / "model.bin").stat().st_size
