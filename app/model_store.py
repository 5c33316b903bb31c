"""Users' own models: a catalog of real models, a local store, and getting models into it (pull, import, convert).

The store is a folder (``$SIMULSUB_MODELS``, default ``~/.cache/simulsub/models``) with one directory per model,
each holding the files our runtimes load plus ``simulsub-model.json`` (its name, role, format and origin).
An installed model's name works wherever a model directory does (``--model opus-mt-en-de``).

- ``pull NAME`` downloads a catalog entry (or ``hf:ORG/REPO`` / ``modelscope:ORG/REPO``) with the Hugging Face Hub
  or ModelScope client into ``STORE/hub`` (resumable, with progress bars; a repository already there is reused
  offline), then imports it.
- ``import DIR`` recognises the directory's format (:func:`detect_format`), converts Hugging Face translation
  models (Marian/OPUS-MT, M2M100, NLLB) and Whisper to CTranslate2 (int8 by default), checks ASR directories the
  way the runtime will load them (a FunASR online export is refused), and copies the rest as they are.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app.errors import UserError
from app.profiles import PRETRAINED_DIR

logger = logging.getLogger(__name__)

STORE_ENV = "SIMULSUB_MODELS"
MANIFEST = "simulsub-model.json"
ROLES = ("mt", "asr", "llm")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class CatalogEntry:
    """A model ``pull`` knows by name: where it lives (``hub``: huggingface or modelscope) and what it is for."""

    name: str
    repo: str
    role: str
    description: str
    hub: str = "huggingface"
    patterns: tuple[str, ...] | None = None  # files to download (None: the whole repository)


_HF_MT = ("*.json", "*.spm", "*.model", "*.safetensors", "*.txt")
CATALOG: dict[str, CatalogEntry] = {e.name: e for e in (
    CatalogEntry("opus-mt-en-de", "Helsinki-NLP/opus-mt-en-de", "mt", "OPUS-MT Marian en→de (74 M parameters)",
                 patterns=_HF_MT),
    CatalogEntry("opus-mt-en-fr", "Helsinki-NLP/opus-mt-en-fr", "mt", "OPUS-MT Marian en→fr", patterns=_HF_MT),
    CatalogEntry("nllb-200-distilled-600M", "facebook/nllb-200-distilled-600M", "mt",
                 "NLLB-200 distilled, 200 languages (--source-lang/--target-lang)", patterns=_HF_MT),
    CatalogEntry("m2m100_418M", "facebook/m2m100_418M", "mt", "M2M100, 100 languages (--source-lang/--target-lang)",
                 patterns=_HF_MT),
    CatalogEntry("faster-whisper-base", "Systran/faster-whisper-base", "asr",
                 "Whisper base as CTranslate2 (the `whisper` ASR's model, any size: faster-whisper-small, …)"),
    CatalogEntry("faster-whisper-small", "Systran/faster-whisper-small", "asr", "Whisper small as CTranslate2"),
)}


@dataclass(frozen=True)
class InstalledModel:
    """One model of the store (or a bundled one): the manifest's fields and its directory."""

    name: str
    role: str
    format: str
    path: Path
    source: str = ""
    installed: str = ""


def store_dir() -> Path:
    """The store folder (``$SIMULSUB_MODELS`` or ``~/.cache/simulsub/models``; not created here)."""
    return Path(os.environ.get(STORE_ENV) or Path.home() / ".cache" / "simulsub" / "models").expanduser()


# -- formats -------------------------------------------------------------------------------------------------
def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def detect_format(path: Path) -> tuple[str, str]:
    """(format, role) of a model directory; :class:`UserError` naming what it holds when it is none we run.

    Formats: ``ct2-translation`` (CTranslate2 model + source.spm/target.spm), ``hf-translation`` (Marian,
    M2M100, NLLB weights), ``ct2-whisper``, ``hf-whisper``, ``whisper-paraformer``, ``paraformer-onnx`` (ours or a
    FunASR offline export), ``nat-onnx``, ``waitk-onnx``, ``llm`` (an interleaved-LM directory: ONNX or a Hugging
    Face causal LM with ``<|end-of-read|>``)."""
    from app.asr import is_ct2_whisper_dir
    from models.marian.convert import hf_model_type, is_hf_translation_dir

    if not path.is_dir():
        raise UserError(f"{path} is not a directory")
    if (path / "model.bin").is_file():
        if is_ct2_whisper_dir(path):
            return "ct2-whisper", "asr"
        if (path / "source.spm").is_file() and (path / "target.spm").is_file():
            return "ct2-translation", "mt"
    if is_hf_translation_dir(path):
        return "hf-translation", "mt"
    kind = hf_model_type(path)
    has_weights = any((path / f).is_file() for f in ("model.safetensors", "pytorch_model.bin"))
    if kind == "whisper" and has_weights:
        return "hf-whisper", "asr"
    if (path / "config.yaml").is_file():
        from models.asr.wparaformer.runtime import is_whisper_paraformer_dir

        return ("whisper-paraformer" if is_whisper_paraformer_dir(path) else "paraformer-onnx"), "asr"
    from models.llm.runtime import is_llm_dir
    from models.waitk.runtime import is_waitk_dir

    if is_waitk_dir(path):
        return "waitk-onnx", "mt"
    if (path / "source.spm").is_file() and (path / "config.json").is_file() and any(path.glob("model*.onnx")):
        return "nat-onnx", "mt"
    if is_llm_dir(path):
        return "llm", "llm"
    what = f"a Hugging Face {kind} model" if kind else "no model files we know"
    raise UserError(f"{path} holds {what}: simulsub imports CTranslate2 or Hugging Face Marian/OPUS-MT, M2M100 and "
                    "NLLB translation models, Whisper (CTranslate2 or Hugging Face), Paraformer ONNX (ours or a "
                    "FunASR offline export) and interleaved-LM directories")


def _check_asr(path: Path, fmt: str) -> None:
    """Load an ASR directory the way the runtime will (a FunASR online export is refused here, not at run time)."""
    if fmt != "paraformer-onnx":
        return
    from models.asr import ModelDirError, ParaformerOnnx

    try:
        ParaformerOnnx(path)
    except ModelDirError as e:
        raise UserError(str(e)) from None


# -- the store -------------------------------------------------------------------------------------------------
def installed(store: Path | None = None) -> list[InstalledModel]:
    """Models in the store, by name."""
    root = store or store_dir()
    out = []
    for manifest in sorted(root.glob(f"*/{MANIFEST}")):
        data = _json(manifest)
        if {"name", "role", "format"} <= data.keys():
            out.append(InstalledModel(name=str(data["name"]), role=str(data["role"]), format=str(data["format"]),
                                      path=manifest.parent, source=str(data.get("source", "")),
                                      installed=str(data.get("installed", ""))))
    return out


def bundled() -> list[InstalledModel]:
    """The default models committed under ``models/pretrained``."""
    out = []
    for d in sorted(p for p in PRETRAINED_DIR.iterdir() if p.is_dir()) if PRETRAINED_DIR.is_dir() else []:
        try:
            fmt, role = detect_format(d)
        except UserError:
            continue
        out.append(InstalledModel(name=d.name, role=role, format=fmt, path=d, source="bundled"))
    return out


def find_model(name: str, store: Path | None = None) -> Path | None:
    """The directory of the installed model ``name`` (None when there is none of that name)."""
    if not NAME_RE.fullmatch(name):
        return None
    d = (store or store_dir()) / name
    return d if (d / MANIFEST).is_file() else None


def resolve_model_dir(value: str | Path) -> Path:
    """``value`` as given when it is a path that exists, else the installed model of that name, else as given."""
    path = Path(value)
    if path.exists():
        return path
    found = find_model(str(value))
    return found if found is not None else path


def _free_place(root: Path, name: str, force: bool) -> Path:
    """Where model ``name`` goes in the store; an installed one of that name is kept unless ``force``."""
    dest = root / name
    if dest.exists() and not force:
        raise UserError(f"a model named {name} is already installed in {root}: pass --force to replace it, or "
                        "--name to install this one beside it")
    return dest


def _copy(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".git", ".cache", "*.lock", "*.incomplete"))


def convert_whisper(src: Path, dest: Path, quantization: str | None) -> None:
    import ctranslate2.converters

    files = [f for f in ("tokenizer.json", "preprocessor_config.json") if (src / f).is_file()]
    try:
        ctranslate2.converters.TransformersConverter(str(src), copy_files=files).convert(
            str(dest), quantization=quantization, force=True)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise UserError(f"CTranslate2 could not convert {src}: {e}") from None


def import_model(src: Path, name: str | None = None, *, quantization: str | None = "int8", force: bool = False,
                 source: str | None = None, store: Path | None = None) -> InstalledModel:
    """Install the model directory ``src`` as ``name`` (default: its folder name), converting where needed.

    The new directory is built beside its final place and renamed into it, so a failed import leaves nothing
    behind and an existing model is replaced only with ``force`` (and only once the new one is complete)."""
    from models.marian.convert import ConversionError, convert_hf_translation

    src = Path(src)
    fmt, role = detect_format(src)
    name = name or src.resolve().name
    if not NAME_RE.fullmatch(name):
        raise UserError(f"bad model name {name!r}: use letters, digits, '-', '_' and '.' (not first)")
    root = store or store_dir()
    dest = _free_place(root, name, force)
    _check_asr(src, fmt)
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    built = work / "model"
    try:
        if fmt == "hf-translation":
            try:
                convert_hf_translation(src, built, quantization=quantization, force=True)
            except ConversionError as e:
                raise UserError(str(e)) from None
            fmt = "ct2-translation"
        elif fmt == "hf-whisper":
            convert_whisper(src, built, quantization)
            fmt = "ct2-whisper"
        else:
            _copy(src, built)
        model = InstalledModel(name=name, role=role, format=fmt, path=dest, source=source or str(src.resolve()),
                               installed=time.strftime("%Y-%m-%dT%H:%M:%S"))
        manifest = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(model).items() if k != "path"}
        (built / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        if dest.exists():
            shutil.rmtree(dest)
        built.rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("installed %s (%s, %s) in %s", name, role, fmt, dest)
    return model


def remove_model(name: str, store: Path | None = None) -> Path:
    path = find_model(name, store)
    if path is None:
        raise UserError(f"no installed model named {name} (see: simulsub models list)")
    shutil.rmtree(path)
    return path


# -- pulling ---------------------------------------------------------------------------------------------------
def parse_spec(spec: str) -> CatalogEntry:
    """A catalog name, or ``hf:ORG/REPO`` / ``modelscope:ORG/REPO`` (role found on import)."""
    if spec in CATALOG:
        return CATALOG[spec]
    hub, sep, repo = spec.partition(":")
    if sep and hub in ("hf", "huggingface", "modelscope") and repo.count("/") == 1 and all(repo.split("/")):
        return CatalogEntry(name=repo.split("/")[1], repo=repo, role="", description="",
                            hub="modelscope" if hub == "modelscope" else "huggingface")
    raise UserError(f"unknown model {spec!r}: pull one of {', '.join(CATALOG)}, or hf:ORG/REPO or "
                    "modelscope:ORG/REPO (see: simulsub models list)")


def download(entry: CatalogEntry, *, offline: bool = False, revision: str | None = None,
             store: Path | None = None) -> Path:
    """The local snapshot of ``entry``'s repository (downloaded, resumed, or reused from ``STORE/hub``)."""
    cache = (store or store_dir()) / "hub"
    if entry.hub == "modelscope":
        return _download_modelscope(entry, cache / "modelscope", revision, offline)
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError:
        raise UserError("pulling from the Hugging Face Hub needs huggingface_hub: pip install huggingface_hub"
                        ) from None
    try:
        return Path(snapshot_download(entry.repo, revision=revision, cache_dir=str(cache),
                                      allow_patterns=list(entry.patterns) if entry.patterns else None,
                                      local_files_only=offline))
    except LocalEntryNotFoundError:
        how = "offline" if offline else "the Hugging Face Hub cannot be reached"
        raise UserError(f"{entry.repo} is not in {cache} and {how}: pull it on a machine with internet access "
                        f"(SIMULSUB_MODELS={cache.parent} simulsub models pull {entry.name}) and copy {cache.parent}, "
                        "or download the repository by hand and run: simulsub models import DIR") from None
    except HfHubHTTPError as e:
        raise UserError(f"the Hugging Face Hub refused {entry.repo}: {str(e).splitlines()[0]}") from None
    except OSError as e:
        raise UserError(f"cannot download {entry.repo}: {e}") from None


def _download_modelscope(entry: CatalogEntry, cache: Path, revision: str | None, offline: bool) -> Path:
    local = cache / entry.repo
    if offline:
        if local.is_dir() and any(local.iterdir()):
            return local
        raise UserError(f"{entry.repo} is not in {cache} and pulling is offline")
    try:
        from modelscope import snapshot_download
    except ImportError:
        raise UserError("pulling from ModelScope needs its client: pip install modelscope") from None
    try:
        return Path(snapshot_download(entry.repo, revision=revision, local_dir=str(local)))
    except Exception as e:  # the client raises many kinds; each becomes one line
        raise UserError(f"cannot download {entry.repo} from ModelScope: {str(e).splitlines()[0]}") from None


def pull(spec: str, *, name: str | None = None, offline: bool = False, revision: str | None = None,
         quantization: str | None = "int8", force: bool = False, store: Path | None = None,
         on_downloaded: Callable[[Path], None] | None = None) -> InstalledModel:
    """Download (or reuse) ``spec`` and import it into the store."""
    entry = parse_spec(spec)
    _free_place(store or store_dir(), name or entry.name, force)  # before any download
    snapshot = download(entry, offline=offline, revision=revision, store=store)
    if on_downloaded is not None:
        on_downloaded(snapshot)
    hub = "hf" if entry.hub == "huggingface" else entry.hub
    return import_model(snapshot, name or entry.name, quantization=quantization, force=force,
                        source=f"{hub}:{entry.repo}" + (f"@{revision}" if revision else ""), store=store)
