"""Broad English text for the synthetic training speech, from Debian packages and Multi30k.

Sources (each optional; missing ones are skipped with a warning):

- WordNet 3.0 (Debian ``wordnet-base``): definitions and quoted usage examples of ~117k synsets (encyclopedic
  vocabulary: places, science, people);
- fortune cookies (Debian ``fortunes``): quotations, literature, science and news one-liners;
- Multi30k ``train.en`` (image captions, the translation models' domain).

Every line is kept twice: as written (what the TTS engine reads, punctuation and digits included) and as the
recognition target (:func:`target_text`: lower case, words of letters, digits and apostrophes). Lines that match
the transcript of a test clip (``--exclude``) are dropped, so the real-speech test stays unseen.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

WORDNET_DIR = Path("/usr/share/wordnet")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
_BAD_CHARS = re.compile(r"[^A-Za-z0-9 ,.;:!?'\"()\-]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")
_TARGET_DROP = re.compile(r"[^a-z0-9' ]+")


def target_text(text: str) -> str:
    """The recognition target of a written line: lower case, punctuation to spaces, apostrophes kept inside words."""
    t = _TARGET_DROP.sub(" ", text.lower().replace("-", " "))
    words = [w.strip("'") for w in t.split()]
    return " ".join(w for w in words if w)


def clean_line(text: str, *, min_words: int = 3, max_words: int = 40) -> str | None:
    """A line fit to be spoken and transcribed, or None (odd characters, too short or long, shouting)."""
    text = " ".join(text.replace("`", "'").split())
    if not text or _BAD_CHARS.search(text):
        return None
    words = text.split()
    if not min_words <= len(words) <= max_words:
        return None
    if sum(1 for w in words if len(w) > 1 and w.isupper()) > 1:
        return None
    if not target_text(text):
        return None
    return text


def wordnet_lines(root: Path = WORDNET_DIR) -> Iterator[str]:
    """Definitions and quoted examples of every WordNet synset (``data.noun/verb/adj/adv``)."""
    for pos in ("noun", "verb", "adj", "adv"):
        path = root / f"data.{pos}"
        if not path.is_file():
            continue
        with path.open(encoding="latin-1") as f:
            for line in f:
                if line.startswith(" ") or "|" not in line:
                    continue
                gloss = line.split("|", 1)[1].strip()
                for part in gloss.split(";"):
                    part = part.strip().strip('"').strip()
                    if part:
                        yield part[0].upper() + part[1:]


def fortune_lines(root: Path = FORTUNES_DIR) -> Iterator[str]:
    """Sentences of every fortune file (attributions and verse layout dropped)."""
    if not root.is_dir():
        return
    for path in sorted(root.iterdir()):
        if path.suffix or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for entry in text.split("\n%\n"):
            body = " ".join(ln.strip() for ln in entry.splitlines() if ln.strip() and not ln.strip().startswith("--"))
            yield from (s.strip() for s in _SENTENCE_END.split(body) if s.strip())


def text_lines(path: Path) -> Iterator[str]:
    if path.is_file():
        yield from (ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip())


@dataclass(frozen=True)
class TextMix:
    """How many lines to draw from each source; ``join_prob``: two lines spoken as one utterance (longer ones)."""

    wordnet: int = 12000
    fortunes: int = 9000
    multi30k: int = 6000
    join_prob: float = 0.25
    seed: int = 1


def unique_clean(lines: Iterable[str], exclude: set[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for line in lines:
        c = clean_line(line)
        if c is None:
            continue
        key = target_text(c)
        if key in seen or key in exclude:
            continue
        seen.add(key)
        out.append(c)
    return out


def build_text(mix: TextMix, *, multi30k: Path, exclude: set[str]) -> list[str]:
    """The training lines (as written), shuffled deterministically by ``mix.seed``."""
    rng = random.Random(mix.seed)
    pools = {
        "wordnet": unique_clean(wordnet_lines(), exclude),
        "fortunes": unique_clean(fortune_lines(), exclude),
        "multi30k": unique_clean(text_lines(multi30k), exclude),
    }
    chosen: list[str] = []
    for name, pool in pools.items():
        want = getattr(mix, name)
        if not pool:
            logger.warning("no %s text found: skipped", name)
            continue
        rng.shuffle(pool)
        logger.info("%s: %d usable lines, taking %d", name, len(pool), min(want, len(pool)))
        chosen.extend(pool[:want])
    rng.shuffle(chosen)
    out: list[str] = []
    i = 0
    while i < len(chosen):
        if i + 1 < len(chosen) and rng.random() < mix.join_prob and len((chosen[i] + chosen[i + 1]).split()) <= 45:
            a = chosen[i] if chosen[i][-1] in ".!?" else chosen[i] + "."
            out.append(f"{a} {chosen[i + 1]}")
            i += 2
        else:
            out.append(chosen[i])
            i += 1
    return out


def read_exclusions(tsv_files: Iterable[Path]) -> set[str]:
    """Normalised transcripts of test clips (``path<TAB>transcript`` lines) that training text must not contain."""
    out = set()
    for tsv in tsv_files:
        for line in text_lines(tsv):
            if "\t" in line:
                out.add(target_text(line.split("\t", 1)[1]))
    return out
