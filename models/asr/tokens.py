"""Token lists of Paraformer directories (``tokens.json``) and turning token ids into text.

Three spellings occur in FunASR vocabularies and ours: SentencePiece pieces (``▁word`` starts a word),
BPE with ``@@`` continuation marks (``hel@@ lo``) and whole words / CJK characters. Special tokens
``<blank>``, ``<s>``, ``</s>``, ``<unk>`` (and any other ``<...>`` control symbol) never reach the text.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPM_SPACE = "▁"
BPE_JOIN = "@@"
BLANK, SOS, EOS, UNK = "<blank>", "<s>", "</s>", "<unk>"


def _is_cjk(ch: str) -> bool:
    return unicodedata.category(ch) == "Lo" and ("\u3000" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af")


@dataclass
class TokenList:
    """Id → token table with the ids of the special tokens (``-1`` when a vocabulary lacks one)."""

    tokens: list[str]
    blank_id: int = field(init=False)
    sos_id: int = field(init=False)
    eos_id: int = field(init=False)
    unk_id: int = field(init=False)

    def __post_init__(self) -> None:
        index = {t: i for i, t in enumerate(self.tokens)}
        self.blank_id = index.get(BLANK, -1)
        self.sos_id = index.get(SOS, -1)
        self.eos_id = index.get(EOS, -1)
        self.unk_id = index.get(UNK, -1)
        self._special = {i for i, t in enumerate(self.tokens) if t.startswith("<") and t.endswith(">") and len(t) > 2}
        self._spm = any(t.startswith(SPM_SPACE) for t in self.tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def load(cls, model_dir: Path, config: dict[str, Any] | None = None) -> TokenList:
        """``tokens.json`` (a JSON list), else ``tokens.txt`` (one per line), else ``token_list`` in config.yaml."""
        js, txt = model_dir / "tokens.json", model_dir / "tokens.txt"
        if js.is_file():
            data = json.loads(js.read_text(encoding="utf-8"))
            if not isinstance(data, list) or not all(isinstance(t, str) for t in data):
                raise ValueError(f"{js} must be a JSON list of strings")
            return cls(list(data))
        if txt.is_file():
            return cls([line.split()[0] if line.split() else line for line in txt.read_text("utf-8").splitlines()])
        if config and isinstance(config.get("token_list"), list):
            return cls([str(t) for t in config["token_list"]])
        raise FileNotFoundError(f"{model_dir} has no tokens.json (nor tokens.txt, nor token_list in config.yaml)")

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.tokens, ensure_ascii=False, indent=0), encoding="utf-8")

    def is_special(self, token_id: int) -> bool:
        return token_id in self._special or not 0 <= token_id < len(self.tokens)

    def to_pieces(self, ids: Sequence[int]) -> list[str]:
        """The non-special tokens of ``ids`` (``<unk>`` and other control symbols dropped)."""
        return [self.tokens[i] for i in ids if not self.is_special(int(i))]

    def to_text(self, ids: Sequence[int]) -> str:
        """Detokenise: ``▁`` starts a word, ``@@`` joins with the next token, CJK characters join, else spaces."""
        return join_pieces(self.to_pieces(ids), spm=self._spm)

    def to_words(self, ids: Sequence[int]) -> list[str]:
        return self.to_text(ids).split()


def join_pieces(pieces: Sequence[str], *, spm: bool) -> str:
    """Join tokens into text (see :meth:`TokenList.to_text`)."""
    out: list[str] = []
    glue = True  # the next piece attaches to the previous one without a space
    for piece in pieces:
        if spm:
            if piece.startswith(SPM_SPACE):
                out.append(" ")
                piece = piece[len(SPM_SPACE) :]
            out.append(piece)
            continue
        joins = piece.endswith(BPE_JOIN)
        word = piece[: -len(BPE_JOIN)] if joins else piece
        cjk = bool(word) and all(_is_cjk(c) for c in word)
        prev_cjk = bool(out) and _is_cjk(out[-1][-1:] or " ")
        if out and not glue and not (cjk and prev_cjk):
            out.append(" ")
        out.append(word)
        glue = joins
    return " ".join("".join(out).split())
