"""Where the bundled default models live and how a user's model directory is resolved."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import UserError

if TYPE_CHECKING:
    from models.marian.runtime import CT2Translator

REPO_ROOT = Path(__file__).resolve().parent.parent
PRETRAINED_DIR = REPO_ROOT / "models" / "pretrained"
DEFAULT_MT_MODEL = PRETRAINED_DIR / "marian-en-de"
DEFAULT_NAT_MODEL = PRETRAINED_DIR / "nat-en-de"
DEFAULT_WAITK_MODEL = PRETRAINED_DIR / "waitk-en-de"
DEFAULT_LLM_MODEL = PRETRAINED_DIR / "llm-en-de"


def resolve_model_dir(model: str | Path) -> Path:
    """``model`` as a path when it exists, else the installed model of that name (``simulsub models list``),
    else the path as given (its loader then says it is missing)."""
    from app.model_store import find_model

    path = Path(model)
    if path.exists():
        return path
    return find_model(str(model)) or path


def missing_model_hint(model: str | Path) -> str:
    """How to get a model that is not there: pull it when the catalog knows the name."""
    from app.model_store import CATALOG

    if str(model) in CATALOG:
        return f" (not installed: simulsub models pull {model})"
    return " (a directory, or the name of an installed model: simulsub models list)"


def resolve_mt_model(model: str | Path | None) -> Path:
    """The CTranslate2 translation model directory to load (the bundled en→de model by default; a name is an
    installed model)."""
    path = resolve_model_dir(model) if model else DEFAULT_MT_MODEL
    if not path.is_dir():
        hint = (" (the bundled default is missing: is this a full checkout?)" if model is None
                else missing_model_hint(model))
        raise UserError(f"model directory {path} does not exist{hint}")
    return path


def load_translator(
    model: str | Path | None,
    *,
    threads: int = 1,
    device: str = "cpu",
    source_lang: str | None = None,
    target_lang: str | None = None,
) -> CT2Translator:
    """A :class:`models.marian.runtime.CT2Translator` over ``model``, with loading errors made user-facing.

    ``source_lang``/``target_lang`` choose the languages of a multilingual (M2M100/NLLB) model.
    """
    from models.marian.runtime import CT2Translator, LanguageError, ModelDirError

    path = resolve_mt_model(model)
    try:
        return CT2Translator(path, intra_threads=threads, device=device, source_lang=source_lang,
                             target_lang=target_lang)
    except (ModelDirError, LanguageError) as e:
        raise UserError(str(e)) from None
    except RuntimeError as e:  # CTranslate2 refuses the files
        raise UserError(f"cannot load {path} as a CTranslate2 model: {e}") from None
