"""Synthetic speech corpora: render a text file line by line and cache 80-dim fbank features in shards.

A corpus directory (under the ignored ``work/`` folder) holds ``manifest.json`` (the options that define it),
``shard_00000.npz`` (``feats`` float16 ``[frames, 80]`` of all utterances, 10 ms per row, and ``offsets``)
with ``shard_00000.jsonl`` (text and voice per utterance), and optionally ``wavs/`` + ``text.txt`` (16 kHz
16-bit WAV files and their transcripts, one line per file in file order). Shards are written atomically, so
an interrupted build resumes where it stopped. Utterance ``i`` of copy ``c`` has index ``c * lines + i``; its
voice and degradation are a pure function of (seed, index, plan).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.asr.frontend import FrontendOptions, fbank
from models.speech_corpus.render import render_many, utterance_seed
from models.speech_corpus.voices import VoicePlan, choose_voice, espeak_available, festival_voices

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CorpusOptions:
    """One corpus: which text, how many renderings per line, the voice plan and the seed."""

    text_file: Path
    out_dir: Path
    seed: int = 1
    copies: int = 1
    limit: int = 0  # first N lines only (0: all)
    plan: VoicePlan = field(default_factory=VoicePlan)
    shard_size: int = 500
    jobs: int = 1
    write_wavs: bool = False

    def manifest(self) -> dict[str, Any]:
        return {
            "text_file": str(self.text_file), "seed": self.seed, "copies": self.copies, "limit": self.limit,
            "plan": asdict(self.plan), "shard_size": self.shard_size, "write_wavs": self.write_wavs,
            "frontend": FrontendOptions().to_config(), "version": 1,
        }


@dataclass(frozen=True)
class Utterance:
    """A cached utterance: fbank ``[frames, 80]`` (10 ms rows), transcript and voice description."""

    feats: np.ndarray
    text: str
    voice: str
    index: int


def read_lines(path: Path, limit: int = 0) -> list[str]:
    """Non-empty stripped lines of a UTF-8 text file (the first ``limit`` when > 0)."""
    if not path.is_file():
        raise FileNotFoundError(f"text file {path} does not exist")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return lines[:limit] if limit > 0 else lines


def _shard_paths(out_dir: Path, k: int) -> tuple[Path, Path]:
    return out_dir / f"shard_{k:05d}.npz", out_dir / f"shard_{k:05d}.jsonl"


def _build_shard(opts: CorpusOptions, k: int, items: list[tuple[int, str]], festival: list[str]) -> int:
    """Render, featurise and write shard ``k``; returns the number of utterances."""
    specs = [choose_voice(opts.plan, opts.seed, idx, festival=festival) for idx, _ in items]
    audios = render_many([t for _, t in items], specs, seeds=[utterance_seed(opts.seed, idx) for idx, _ in items])
    fopts = FrontendOptions()
    feats, offsets, meta = [], [0], []
    for (idx, text), spec, audio in zip(items, specs, audios, strict=True):
        f = fbank(audio, fopts).astype(np.float16)
        feats.append(f)
        offsets.append(offsets[-1] + f.shape[0])
        meta.append({"index": idx, "text": text, "voice": spec.name, "spec": spec.to_json(),
                     "duration_ms": round(1000 * audio.size / 16000)})
        if opts.write_wavs:
            import soundfile as sf

            sf.write(str(opts.out_dir / "wavs" / f"{idx:06d}.wav"), audio, 16000, subtype="PCM_16")
    npz, jsonl = _shard_paths(opts.out_dir, k)
    tmp = npz.with_name(npz.stem + ".tmp.npz")
    np.savez(tmp, feats=np.concatenate(feats) if feats else np.zeros((0, 80), np.float16),
             offsets=np.array(offsets, dtype=np.int64))
    jsonl.write_text("".join(json.dumps(m) + "\n" for m in meta), encoding="utf-8")
    os.replace(tmp, npz)
    return len(items)


def build_corpus(opts: CorpusOptions, *, progress: bool = True) -> Path:
    """Render the corpus (resuming finished shards); returns its directory."""
    from tqdm import tqdm

    if not espeak_available():
        raise FileNotFoundError("espeak-ng is not installed (apt-get install espeak-ng)")
    lines = read_lines(opts.text_file, opts.limit)
    if not lines:
        raise ValueError(f"{opts.text_file} has no text lines")
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    manifest = opts.out_dir / "manifest.json"
    wanted = json.loads(json.dumps(opts.manifest()))  # tuples become lists, as in the file
    if manifest.is_file():
        have = json.loads(manifest.read_text(encoding="utf-8"))
        if have != wanted:
            raise ValueError(f"{opts.out_dir} holds a corpus built with other options; use another directory")
    else:
        manifest.write_text(json.dumps(wanted, indent=1), encoding="utf-8")
    if opts.write_wavs:
        (opts.out_dir / "wavs").mkdir(exist_ok=True)
    items = [(c * len(lines) + i, t) for c in range(opts.copies) for i, t in enumerate(lines)]
    festival = festival_voices() if opts.plan.festival_share > 0 else []
    if opts.plan.festival_share > 0 and not festival:
        logger.warning("festival voices not installed: rendering with espeak-ng only")
    shards = [items[i : i + opts.shard_size] for i in range(0, len(items), opts.shard_size)]
    todo = [k for k in range(len(shards)) if not _shard_paths(opts.out_dir, k)[0].is_file()]
    done = sum(len(shards[k]) for k in range(len(shards)) if k not in set(todo))
    bar = tqdm(total=len(items), initial=done, unit="utt", desc=f"render {opts.out_dir.name}", disable=not progress)
    if opts.jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=opts.jobs) as pool:
            futures = [pool.submit(_build_shard, opts, k, shards[k], festival) for k in todo]
            for fut in futures:
                bar.update(fut.result())
    else:
        for k in todo:
            bar.update(_build_shard(opts, k, shards[k], festival))
    bar.close()
    if opts.write_wavs:
        (opts.out_dir / "text.txt").write_text("".join(t + "\n" for _, t in items), encoding="utf-8")
        (opts.out_dir / "wavs.txt").write_text(
            "".join(str(opts.out_dir / "wavs" / f"{i:06d}.wav") + "\n" for i, _ in items), encoding="utf-8")
    return opts.out_dir


def iter_corpus(corpus_dir: Path) -> Iterator[Utterance]:
    """Utterances of a built corpus in index order."""
    shards = sorted(corpus_dir.glob("shard_*.npz"))
    shards = [s for s in shards if not s.name.endswith(".tmp.npz")]
    if not shards:
        raise FileNotFoundError(f"{corpus_dir} has no rendered shards: build the corpus first")
    for npz in shards:
        data = np.load(npz)
        feats, offsets = data["feats"], data["offsets"]
        meta = [json.loads(x) for x in npz.with_suffix(".jsonl").read_text(encoding="utf-8").splitlines()]
        for j, m in enumerate(meta):
            yield Utterance(feats[offsets[j] : offsets[j + 1]], m["text"], m["voice"], int(m["index"]))


def load_corpus(corpus_dir: Path) -> list[Utterance]:
    return list(iter_corpus(corpus_dir))
