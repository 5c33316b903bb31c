"""Reading users' text files with clear errors (missing file, empty file, empty line)."""

from __future__ import annotations

import sys
from pathlib import Path

from app.errors import UserError


def read_sentences(path: str | Path, *, what: str = "file", allow_empty_lines: bool = False) -> list[str]:
    """Lines of a UTF-8 file, one sentence per line; raises :class:`UserError` on any problem."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} {p} does not exist")
    if not p.is_file():
        raise UserError(f"{what} {p} is not a file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{what} {p} is not UTF-8 text (byte {e.start})") from None
    lines = text.splitlines()
    if not lines or not any(line.strip() for line in lines):
        raise UserError(f"{what} {p} is empty")
    if not allow_empty_lines:
        for i, line in enumerate(lines, 1):
            if not line.strip():
                raise UserError(f"{what} {p}: line {i} is empty (one sentence per line, no blank lines)")
    return lines


def read_stdin_sentences() -> list[str]:
    """Sentences from standard input; an empty line is an error (it would shift the output lines)."""
    data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode("utf-8")
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise UserError(f"stdin is not UTF-8 text (byte {e.start}): convert it first, e.g. iconv -t UTF-8"
                        ) from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            raise UserError(f"stdin: line {i} is empty (one sentence per line, no blank lines)")
    return lines


def read_lines_per_audio(path: str | Path, count: int, *, what: str) -> list[str]:
    """One line per audio file (trailing blank lines ignored); :class:`UserError` when unreadable or miscounted."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"{what} {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {what} {p}: {e}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) != count:
        raise UserError(f"{what} {p} has {len(lines)} lines but {count} audio files were given")
    return lines
