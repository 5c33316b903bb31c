"""What every ``simulsub train`` family needs first: its training module (from the ``[train]`` extra)."""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

from app.errors import UserError


def training_module(name: str) -> ModuleType:
    """Import ``name`` (e.g. ``models.marian.train``) and turn on progress logging; a clear error without torch."""
    try:
        module = importlib.import_module(name)
    except ImportError as e:
        raise UserError(f"training needs the [train] extra ({e.name} is missing): pip install -e '.[train]'") from None
    logging.getLogger().setLevel(logging.INFO)
    return module
