"""Training speech for Whisper-Paraformer: rendered, degraded, encoded once by the frozen Whisper encoder.

A corpus directory (under the ignored ``work/``) holds ``manifest.json`` and shards ``shard_00000.npy`` (encoder
frames float16 ``[frames, 512]``, 20 ms each, of all its utterances back to back) with ``shard_00000.jsonl`` (one
line per utterance: text, target, voice, frame offset and count, view). Each utterance is rendered by one of
espeak-ng / festival / flite (:mod:`models.speech_corpus`), degraded (tempo, level, noise, and here also
reverberation and telephone band), optionally SpecAugment-masked on the log-mel, and encoded either as one
window (``view: whole``, what offline decoding and the streaming final see) or chunk by chunk with bounded left
context and look-ahead (``view: chunked``, what streaming partials see). Everything is a pure function of
(seed, index), shards are written atomically and a build resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.asr.wparaformer.text_corpus import target_text
from models.speech_corpus.render import render_many, utterance_seed
from models.speech_corpus.voices import VoicePlan, choose_voice, festival_voices, flite_voices

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Degradation:
    """Extra degradations beyond :func:`models.speech_corpus.render.degrade` (probabilities per utterance)."""

    reverb_prob: float = 0.3
    rt60_range: tuple[float, float] = (0.15, 0.7)  # seconds
    telephone_prob: float = 0.08
    specaug_prob: float = 0.5
    freq_masks: int = 2
    freq_width: int = 10  # mel bins
    time_masks: int = 2
    time_width: int = 20  # mel frames (10 ms)
    chunked_prob: float = 0.1
    chunk: int = 30  # encoder frames (20 ms): 600 ms
    left: int = 300  # 6 s
    right: int = 15  # 300 ms


@dataclass(frozen=True)
class WhisperCorpusOptions:
    lines: tuple[str, ...]
    out_dir: Path
    seed: int = 1
    plan: VoicePlan = field(default_factory=lambda: VoicePlan(festival_share=0.2, flite_share=0.3))
    degrade: Degradation = field(default_factory=Degradation)
    shard_size: int = 400
    jobs: int = 2
    whisper_dir: str | None = None

    def manifest(self) -> dict[str, Any]:
        return {"lines": len(self.lines), "lines_crc": zlib.crc32("\n".join(self.lines).encode()),
                "seed": self.seed, "plan": asdict(self.plan), "degrade": asdict(self.degrade), "version": 1}


def reverberate(audio: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a synthetic room response (exponentially decaying noise, ``rt60`` s), keeping the peak."""
    n = max(16, int(16000 * rt60))
    t = np.arange(n, dtype=np.float32) / 16000
    rir = rng.standard_normal(n).astype(np.float32) * np.exp(-6.9 * t / rt60).astype(np.float32)
    rir[0] = 1.0 + abs(float(rir[0]))
    rir /= float(np.sqrt(np.sum(rir**2)))
    size = 1 << int(np.ceil(np.log2(audio.size + n)))
    wet = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(rir, size), size)[: audio.size].astype(np.float32)
    peak_in, peak_out = float(np.max(np.abs(audio))), float(np.max(np.abs(wet)))
    return wet * (peak_in / peak_out) if peak_out > 0 else wet


def telephone(audio: np.ndarray) -> np.ndarray:
    """8 kHz round trip: nothing above 4 kHz survives."""
    import soxr

    return soxr.resample(soxr.resample(audio, 16000, 8000), 8000, 16000).astype(np.float32)[: audio.size]


def spec_augment(mel: np.ndarray, d: Degradation, rng: np.random.Generator) -> np.ndarray:
    """Frequency and time masks on a normalised log-mel ``[80, T]`` (masked to the window's floor)."""
    out = mel.copy()
    floor = float(out.min()) if out.size else 0.0
    for _ in range(d.freq_masks):
        w = int(rng.integers(0, d.freq_width + 1))
        f0 = int(rng.integers(0, max(1, out.shape[0] - w)))
        out[f0 : f0 + w] = floor
    for _ in range(d.time_masks):
        w = int(rng.integers(0, min(d.time_width, max(1, out.shape[1] // 10)) + 1))
        t0 = int(rng.integers(0, max(1, out.shape[1] - w)))
        out[:, t0 : t0 + w] = floor
    return out


def _shard_paths(out_dir: Path, k: int) -> tuple[Path, Path]:
    return out_dir / f"shard_{k:05d}.npy", out_dir / f"shard_{k:05d}.jsonl"


_ENCODER: Any = None


def _encoder(whisper_dir: str | None) -> Any:
    global _ENCODER
    if _ENCODER is None:
        from models.asr.wparaformer.encoder import WhisperEncoder

        _ENCODER = WhisperEncoder(whisper_dir, threads=1)
    return _ENCODER


def encode_utterance(audio: np.ndarray, d: Degradation, rng: np.random.Generator, encoder: Any) -> tuple[
        np.ndarray, str]:
    """Encoder frames of one degraded utterance and the view used (``whole`` or ``chunked``)."""
    from models.asr.wparaformer.encoder import encode_chunked
    from models.asr.wparaformer.features import ENCODER_HOP, log_mel

    audio = audio[: (audio.size // ENCODER_HOP) * ENCODER_HOP]
    masked = rng.random() < d.specaug_prob
    if rng.random() < d.chunked_prob:
        return encode_chunked(encoder, audio, chunk=d.chunk, left=d.left, right=d.right), "chunked"
    mel = log_mel(audio)
    if masked:
        mel = spec_augment(mel, d, rng)
    return encoder.encode(mel), "whole+specaug" if masked else "whole"


def _build_shard(opts: WhisperCorpusOptions, k: int, items: list[tuple[int, str]]) -> int:
    festival, flite = festival_voices(), flite_voices()
    specs = [choose_voice(opts.plan, opts.seed, idx, festival=festival, flite=flite) for idx, _ in items]
    audios = render_many([t for _, t in items], specs, seeds=[utterance_seed(opts.seed, idx) for idx, _ in items])
    encoder = _encoder(opts.whisper_dir)
    d = opts.degrade
    frames: list[np.ndarray] = []
    meta: list[dict[str, Any]] = []
    offset = 0
    for (idx, text), spec, audio in zip(items, specs, audios, strict=True):
        rng = np.random.default_rng(zlib.crc32(f"whisper-degrade:{opts.seed}:{idx}".encode()))
        extra = []
        if rng.random() < d.reverb_prob:
            rt60 = float(rng.uniform(*d.rt60_range))
            audio = reverberate(audio, rt60, rng)
            extra.append(f"reverb {rt60:.2f}s")
        if rng.random() < d.telephone_prob:
            audio = telephone(audio)
            extra.append("telephone")
        enc, view = encode_utterance(audio, d, rng, encoder)
        frames.append(enc.astype(np.float16))
        meta.append({"index": idx, "text": text, "target": target_text(text), "voice": spec.name,
                     "extra": extra, "view": view, "offset": offset, "frames": int(enc.shape[0])})
        offset += int(enc.shape[0])
    npy, jsonl = _shard_paths(opts.out_dir, k)
    tmp = npy.with_name(npy.stem + f".tmp{os.getpid()}.npy")
    np.save(tmp, np.concatenate(frames) if frames else np.zeros((0, 512), np.float16))
    jsonl.write_text("".join(json.dumps(m) + "\n" for m in meta), encoding="utf-8")
    os.replace(tmp, npy)
    return len(items)


def build_corpus(opts: WhisperCorpusOptions, *, progress: bool = True) -> Path:
    """Render and encode the corpus (finished shards are kept); returns its directory."""
    from tqdm import tqdm

    opts.out_dir.mkdir(parents=True, exist_ok=True)
    manifest = opts.out_dir / "manifest.json"
    wanted = json.loads(json.dumps(opts.manifest()))
    if manifest.is_file():
        if json.loads(manifest.read_text(encoding="utf-8")) != wanted:
            raise ValueError(f"{opts.out_dir} holds a corpus built with other options; use another directory")
    else:
        manifest.write_text(json.dumps(wanted, indent=1), encoding="utf-8")
    items = list(enumerate(opts.lines))
    shards = [items[i : i + opts.shard_size] for i in range(0, len(items), opts.shard_size)]
    todo = [k for k in range(len(shards)) if not _shard_paths(opts.out_dir, k)[0].is_file()]
    done = len(items) - sum(len(shards[k]) for k in todo)
    bar = tqdm(total=len(items), initial=done, unit="utt", desc=f"render+encode {opts.out_dir.name}",
               disable=not progress)
    if opts.jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=opts.jobs) as pool:
            for n in pool.map(_build_shard, [opts] * len(todo), todo, [shards[k] for k in todo]):
                bar.update(n)
    else:
        for k in todo:
            bar.update(_build_shard(opts, k, shards[k]))
    bar.close()
    return opts.out_dir


@dataclass
class EncodedUtterance:
    frames: np.ndarray  # float16 [T, 512]
    target: str
    meta: dict[str, Any]


def load_encoded(corpus_dir: Path, *, mmap: bool = True) -> list[EncodedUtterance]:
    """Every utterance of a built corpus (frames memory-mapped by default)."""
    out = []
    shards = sorted(p for p in corpus_dir.glob("shard_*.npy") if ".tmp" not in p.name)
    if not shards:
        raise FileNotFoundError(f"{corpus_dir} has no encoded shards: build the corpus first")
    for npy in shards:
        arr = np.load(npy, mmap_mode="r" if mmap else None)
        for line in npy.with_suffix(".jsonl").read_text(encoding="utf-8").splitlines():
            m = json.loads(line)
            out.append(EncodedUtterance(arr[m["offset"] : m["offset"] + m["frames"]], m["target"], m))
    return out

