"""Output files of the CLI: checked before any work starts, and written atomically.

A command that fails half-way (a corrupt second input, Ctrl-C) must not leave a truncated file where a good one
was: :class:`AtomicTextFile` writes ``PATH.partial`` and renames it onto ``PATH`` only when the command
succeeds; on failure the partial file is kept (nothing computed is lost) and the existing ``PATH`` is untouched.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from app.errors import UserError


def check_output_path(path: str | Path, option: str) -> Path:
    """``path`` as a writable file path for ``option`` (e.g. ``--srt``); :class:`UserError` otherwise."""
    p = Path(path)
    if str(path) == "" or p.is_dir():
        raise UserError(f"{option} {p} is a directory: name a file, e.g. {option} out{p.suffix or '.txt'}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"{option} {p}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UserError(f"{option} {p} is not writable")
    return p


class AtomicTextFile:
    """A UTF-8 text file written under ``PATH.partial``; :meth:`commit` renames it onto ``PATH``."""

    def __init__(self, path: str | Path, option: str) -> None:
        self.path = check_output_path(path, option)
        self.partial = self.path.with_name(self.path.name + ".partial")
        try:
            self._file = self.partial.open("w", encoding="utf-8")
        except OSError as e:
            raise UserError(f"{option} {self.path}: cannot write ({e.strerror or e})") from None
        self.done = False

    def write(self, text: str) -> None:
        self._file.write(text)

    def flush(self) -> None:
        self._file.flush()

    def commit(self) -> None:
        """Close and move into place (atomic on one file system)."""
        if not self.done:
            self.done = True
            self._file.close()
            os.replace(self.partial, self.path)

    def abort(self) -> Path | None:
        """Close, leave ``PATH`` as it was; returns the kept partial file (None when it is empty: removed)."""
        if self.done:
            return None
        self.done = True
        self._file.close()
        if self.partial.stat().st_size == 0:
            self.partial.unlink()
            return None
        return self.partial

    def __enter__(self) -> AtomicTextFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()
