"""Output files of the CLI: checked before any work starts, and written atomically.

A command that fails half-way (a corrupt second input, Ctrl-C) must not leave a truncated file where a good one
was: :class:`AtomicTextFile` writes ``PATH.partial`` and renames it onto ``PATH`` only when the command
succeeds; on failure the partial file is kept (nothing computed is lost) and the existing ``PATH`` is untouched.
:class:`AppendTextFile` is the server's kind: appended to and flushed as it goes.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import TextIO

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


class _TextFile:
    """What both output files share: a UTF-8 text file being written, closed once by ``commit``/``abort``."""

    path: Path
    _file: TextIO
    done: bool

    def write(self, text: str) -> None:
        self._file.write(text)

    def flush(self) -> None:
        self._file.flush()

    def commit(self) -> None:
        """Close; what was written is then in place at ``path``."""
        if not self.done:
            self.done = True
            self._file.close()
            self._in_place()

    def _in_place(self) -> None:
        """Put the closed file in place (nothing to do when it was written there)."""

    def abort(self) -> Path | None:
        """Close after a failure; returns a file kept aside, if any."""
        self.commit()
        return None

    def __enter__(self) -> _TextFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


class AtomicTextFile(_TextFile):
    """A UTF-8 text file written under ``PATH.partial``; :meth:`commit` renames it onto ``PATH``."""

    def __init__(self, path: str | Path, option: str) -> None:
        self.path = check_output_path(path, option)
        self.partial = self.path.with_name(self.path.name + ".partial")
        try:
            self._file = self.partial.open("w", encoding="utf-8")
        except OSError as e:
            raise UserError(f"{option} {self.path}: cannot write ({e.strerror or e})") from None
        self.done = False

    def _in_place(self) -> None:
        os.replace(self.partial, self.path)  # atomic on one file system

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


class AppendTextFile(_TextFile):
    """A UTF-8 file opened for appending (created when missing, with its folder); ``commit`` and ``abort`` close it
    (appended lines stay in the file: nothing is kept aside).

    ``existing``: whether the file already had content when it was opened (e.g. a header is written only once).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self.existing = self._file.tell() > 0
        self.done = False
