"""Render the demo recordings under ``recordings/``: single sentences and long-form talks, with their texts.

    .venv/bin/python -m models.speech_corpus.recordings [--out recordings] [--seed 7]

Voices are espeak-ng voices held out from ASR training (``VoicePlan.clean("heldout")``), sentences come from
Multi30k ``test_2017_flickr`` (never used for training or model selection here). Written:

- ``sentences/NN.flac`` + ``sentences.en`` (transcripts) + ``sentences.de`` (references), one line per file;
- ``longform/talkN.flac``: ``--long-sentences`` sentences each, separated by 0.4–1.2 s pauses, with
  ``longform.en`` / ``longform.de`` (one line per file: all its sentences) and ``longform.times.jsonl``
  (per file, the [start_ms, end_ms] of every sentence: ``simulsub replay --sentence-times``).
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from models.speech_corpus.render import render_many, utterance_seed
from models.speech_corpus.voices import VoicePlan, choose_voice
from models.text.data import multi30k_dir, read_lines
from streaming.types import SENTENCE_END

SR = 16000


def render_texts(texts: Sequence[str], seed: int, first_index: int) -> list[np.ndarray]:
    plan = VoicePlan.clean("heldout")
    idx = range(first_index, first_index + len(texts))
    specs = [choose_voice(plan, seed, i) for i in idx]
    return render_many(texts, specs, seeds=[utterance_seed(seed, i) for i in idx])


def write_sentences(out: Path, en: list[str], de: list[str], seed: int) -> None:
    d = out / "sentences"
    d.mkdir(parents=True, exist_ok=True)
    for i, audio in enumerate(render_texts(en, seed, 0)):
        sf.write(d / f"{i:02d}.flac", audio, SR)
    (out / "sentences.en").write_text("\n".join(en) + "\n", encoding="utf-8")
    (out / "sentences.de").write_text("\n".join(de) + "\n", encoding="utf-8")


def join_sentences(sentences: Sequence[str]) -> str:
    """One reference line from several sentences, each ending in ``.``, ``!`` or ``?`` (Multi30k often has no full
    stop), so that scoring splits the line back into exactly these sentences."""
    return " ".join(s if s.endswith(SENTENCE_END) else s + "." for s in (x.strip() for x in sentences) if s)


def write_longform(out: Path, talks: list[tuple[list[str], list[str]]], seed: int) -> None:
    d = out / "longform"
    d.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    en_lines, de_lines, times = [], [], []
    # a talk keeps one voice: all its sentences share the index of its first sentence
    for t, (en, de) in enumerate(talks):
        plan = VoicePlan.clean("heldout")
        spec = choose_voice(plan, seed, 1000 + t)
        audios = render_many(en, [spec] * len(en), seeds=[utterance_seed(seed, 1000 + t * 100 + i)
                                                           for i in range(len(en))])
        parts, spans, pos = [], [], 0
        for audio in audios:
            spans.append([round(1000 * pos / SR), round(1000 * (pos + audio.size) / SR)])
            parts.append(audio)
            pos += audio.size
            pause = np.zeros(int(rng.uniform(0.4, 1.2) * SR), dtype=np.float32)
            parts.append(pause)
            pos += pause.size
        sf.write(d / f"talk{t + 1}.flac", np.concatenate(parts), SR)
        en_lines.append(join_sentences(en))
        de_lines.append(join_sentences(de))
        times.append(json.dumps(spans))
    (out / "longform.en").write_text("\n".join(en_lines) + "\n", encoding="utf-8")
    (out / "longform.de").write_text("\n".join(de_lines) + "\n", encoding="utf-8")
    (out / "longform.times.jsonl").write_text("\n".join(times) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("recordings"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--sentences", type=int, default=6)
    ap.add_argument("--long-sentences", type=int, default=12)
    args = ap.parse_args(argv)
    data = multi30k_dir()
    en = read_lines(data / "test_2017_flickr.en")
    de = read_lines(data / "test_2017_flickr.de")
    n, m = args.sentences, args.long_sentences
    # sentences 0..7 are the text demo; the audio uses the following ones
    write_sentences(args.out, en[8 : 8 + n], de[8 : 8 + n], args.seed)
    start = 8 + n
    talks = [(en[start + t * m : start + (t + 1) * m], de[start + t * m : start + (t + 1) * m]) for t in range(2)]
    write_longform(args.out, talks, args.seed)
    print(f"wrote {args.out}/sentences ({n} files) and {args.out}/longform (2 talks of {m} sentences)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
