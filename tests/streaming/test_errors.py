"""One exception tree: every exception class of app/, streaming/, models/ and web/ derives from SimulsubError,
ModelDirError is defined once, library code raises no SystemExit, and the CLI turns any SimulsubError into one line
on stderr and exit code 2."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

from streaming.errors import (
    AudioError,
    InputFormatError,
    LanguageError,
    ModelBuildError,
    ModelDirError,
    ModelRunError,
    SimulsubError,
    SourceTooLongError,
    WorkDirError,
)

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "streaming", "models", "web")


def _module_names() -> list[str]:
    names = []
    for pkg in PACKAGES:
        root = importlib.import_module(pkg)
        names.append(pkg)
        names += [m.name for m in pkgutil.walk_packages(root.__path__, pkg + ".") if not m.name.endswith("__main__")]
    return names


def _source_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def test_every_exception_class_derives_from_simulsub_error() -> None:
    outside: list[str] = []
    unimportable: list[str] = []
    seen = 0
    for name in _module_names():
        try:
            module = importlib.import_module(name)
        except ImportError as e:  # an optional dependency (torch, gradio, …) absent from this install
            unimportable.append(f"{name} ({e})")
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name and issubclass(cls, BaseException):
                seen += 1
                if not issubclass(cls, SimulsubError):
                    outside.append(f"{name}.{cls.__qualname__}{tuple(b.__name__ for b in cls.__bases__)}")
    assert not outside, f"exception classes outside the SimulsubError tree: {outside}"
    assert seen >= 20, f"only {seen} exception classes found: is the walk finding the modules?"
    if unimportable:
        pytest.skip(f"not checked (their imports fail here): {unimportable}")


def test_model_dir_error_is_defined_once_and_shared() -> None:
    defs = [f"{p.relative_to(REPO)}:{n.lineno}" for p in _source_files()
            for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
            if isinstance(n, ast.ClassDef) and n.name == "ModelDirError"]
    assert defs == [str(Path("streaming/errors.py")) + ":" + defs[0].split(":")[1]], defs
    for module in ("models.asr", "models.asr.runtime", "models.nat.runtime", "models.marian.runtime"):
        assert importlib.import_module(module).ModelDirError is ModelDirError


def test_existing_names_keep_their_bases() -> None:
    """Callers catch these by name or by their built-in base: both still work."""
    from app.devices import DeviceUnavailableError
    from app.errors import UserError
    from app.server.protocol import ProtocolError
    from models.asr.audio import AudioError as AsrAudioError
    from models.asr.runtime import AsrRunError
    from models.asr.wparaformer.package import WhisperModelError
    from models.llm.loader import LlmLoadError
    from models.llm.onnx_runtime import OnnxLmDirError
    from models.marian.convert import ConversionError
    from models.marian.runtime import LanguageError as MarianLanguageError
    from models.marian.runtime import SourceTooLongError as MarianTooLong
    from models.vad.silero import VadModelError
    from models.waitk.runtime import WaitkModelDirError
    from streaming.instance import LogFormatError
    from streaming.policies.llm import SequenceTooLongError

    assert (AsrAudioError, MarianLanguageError, MarianTooLong) == (AudioError, LanguageError, SourceTooLongError)
    value_errors = (ModelDirError, ModelBuildError, WorkDirError, SourceTooLongError, LanguageError, AudioError,
                    InputFormatError, ProtocolError, LogFormatError, SequenceTooLongError, ConversionError,
                    WaitkModelDirError, OnnxLmDirError, LlmLoadError)
    assert all(issubclass(c, ValueError) for c in value_errors)
    assert all(issubclass(c, RuntimeError) for c in (ModelRunError, AsrRunError, VadModelError, WhisperModelError))
    assert all(issubclass(c, ModelDirError) for c in (WaitkModelDirError, OnnxLmDirError, LlmLoadError,
                                                      VadModelError, WhisperModelError))
    assert issubclass(DeviceUnavailableError, UserError) and issubclass(UserError, SimulsubError)
    assert UserError.exit_code == SimulsubError.exit_code == 2
    assert ProtocolError("bad_start", "x").code == "bad_start"


def _is_main_guard(node: ast.AST) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


PROCESS_ENTRY_POINTS = {("app/server/processes.py", "_child_main")}
"""Functions that are the main of a spawned process (``serve --procs``): they exit like ``__main__`` does."""


def test_library_code_raises_no_system_exit() -> None:
    """Only entry points exit: ``app/__main__.py``, ``if __name__ == "__main__":`` blocks and the mains of spawned
    processes (:data:`PROCESS_ENTRY_POINTS`)."""
    found = []
    for path in _source_files():
        if path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rel = path.relative_to(REPO).as_posix()
        guarded = {id(n) for g in ast.walk(tree) if _is_main_guard(g) for n in ast.walk(g)}
        guarded |= {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
                    and (rel, f.name) in PROCESS_ENTRY_POINTS for n in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and id(node) not in guarded and node.exc is not None:
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(exc, ast.Name) and exc.id == "SystemExit":
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not found, f"library code raises SystemExit: {found}"


@pytest.mark.parametrize("error", [ModelDirError("/m has no model.onnx\n(export one first)"), ModelRunError(),
                                   WorkDirError("w holds another run")])
def test_cli_turns_a_simulsub_error_into_one_line_and_exit_2(error: SimulsubError, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from app.cli import main
    from app.commands import score

    def failing(args: argparse.Namespace) -> int:
        raise error

    monkeypatch.setattr(score, "run", failing)
    code = main(["score", "log.jsonl"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("simulsub score: error: ")
    assert str(error).splitlines()[0] in err if str(error) else type(error).__name__ in err
