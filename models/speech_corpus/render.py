"""Render text to 16 kHz float audio with espeak-ng or festival, then degrade it (tempo, noise, level, silence).

espeak-ng writes 22.05 kHz 16-bit WAV to stdout; festival voices write 16 or 32 kHz. Everything is resampled
with soxr to 16 kHz mono float32, peak-normalised to ``gain`` (≤ 0.9, so nothing clips) and padded with
``lead_ms`` / ``trail_ms`` of silence. Noise and gain are drawn from a generator seeded per utterance, so the
same (text, spec, seed) always gives the same samples.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from models.asr.audio import SAMPLE_RATE, to_mono_16k
from models.speech_corpus.voices import VoiceSpec
from streaming.errors import ModelRunError


class RenderError(ModelRunError):
    """A TTS engine failed or produced no audio."""


def render_espeak(text: str, spec: VoiceSpec, *, timeout_s: float = 30.0) -> np.ndarray:
    """espeak-ng audio of ``text`` at 16 kHz (float32, not yet normalised)."""
    voice = f"{spec.voice}+{spec.variant}" if spec.variant else spec.voice
    cmd = ["espeak-ng", "-v", voice, "-s", str(spec.speed), "-p", str(spec.pitch), "--stdout", text]
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
    if proc.returncode != 0 or len(proc.stdout) < 100:
        raise RenderError(f"espeak-ng {voice} failed: {proc.stderr.decode(errors='replace').strip()[:200]}")
    data, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    return to_mono_16k(data, int(rate))


FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")


def render_flite(text: str, spec: VoiceSpec, *, timeout_s: float = 30.0) -> np.ndarray:
    """flite audio of ``text`` at 16 kHz (voices ``kal``, ``kal16``, ``awb``, ``rms``, ``slt``; duration stretch
    = 170 / speed, as for festival)."""
    stretch = round(170.0 / max(60, spec.speed), 3)
    with tempfile.TemporaryDirectory(prefix="simulsub-flite-") as tmp:
        wav = Path(tmp) / "out.wav"
        cmd = ["flite", "-voice", spec.voice, "--setf", f"duration_stretch={stretch}", "-t", text, "-o", str(wav)]
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
        if proc.returncode != 0 or not wav.is_file():
            raise RenderError(f"flite {spec.voice} failed: {proc.stderr.decode(errors='replace').strip()[:200]}")
        data, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    return to_mono_16k(data, int(rate))


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_festival_batch(texts: Sequence[str], specs: Sequence[VoiceSpec], *, timeout_s: float = 600.0
                          ) -> list[np.ndarray]:
    """festival audio for many utterances in one festival process (16 kHz float32 each)."""
    if not texts:
        return []
    with tempfile.TemporaryDirectory(prefix="simulsub-festival-") as tmp:
        lines = []
        for i, (text, spec) in enumerate(zip(texts, specs, strict=True)):
            stretch = round(170.0 / max(60, spec.speed), 3)
            lines.append(f"(voice_{spec.voice})")
            lines.append(f"(Parameter.set 'Duration_Stretch {stretch})")
            lines.append(f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(text)})) "
                         f"{_scheme_string(str(Path(tmp) / f'{i}.wav'))} 'riff)")
        script = Path(tmp) / "render.scm"
        script.write_text("\n".join(lines) + "\n", encoding="utf-8")
        proc = subprocess.run(["festival", "-b", str(script)], capture_output=True, timeout=timeout_s, check=False)
        out = []
        for i in range(len(texts)):
            wav = Path(tmp) / f"{i}.wav"
            if not wav.is_file():
                raise RenderError(f"festival produced no audio for {texts[i]!r}: "
                                  f"{proc.stderr.decode(errors='replace').strip()[:200]}")
            data, rate = sf.read(str(wav), dtype="float32", always_2d=True)
            out.append(to_mono_16k(data, int(rate)))
        return out


def _colored_noise(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n).astype(np.float32)
    if kind == "white" or n < 4:
        return white
    spec = np.fft.rfft(white)
    f = np.arange(spec.shape[0], dtype=np.float64)
    f[0] = 1.0
    spec = spec / (np.sqrt(f) if kind == "pink" else f)
    return np.fft.irfft(spec, n=n).astype(np.float32)


def change_tempo(audio: np.ndarray, factor: float) -> np.ndarray:
    """Speed perturbation: play ``factor`` times faster (pitch shifts too), as Kaldi's speed perturbation."""
    if abs(factor - 1.0) < 1e-6 or audio.size == 0:
        return audio
    import soxr

    return soxr.resample(audio, SAMPLE_RATE * factor, SAMPLE_RATE, quality="HQ").astype(np.float32)


def degrade(audio: np.ndarray, spec: VoiceSpec, *, seed: int) -> np.ndarray:
    """Tempo change, peak level ``gain``, silence padding and noise at ``snr_db`` (deterministic per seed)."""
    rng = np.random.default_rng(seed)
    x = change_tempo(np.asarray(audio, dtype=np.float32), spec.tempo)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 0:
        x = x * (spec.gain / peak)
    lead = np.zeros(int(SAMPLE_RATE * spec.lead_ms / 1000), dtype=np.float32)
    trail = np.zeros(int(SAMPLE_RATE * spec.trail_ms / 1000), dtype=np.float32)
    x = np.concatenate([lead, x, trail])
    if spec.snr_db is not None and x.size:
        speech_power = float(np.mean(x**2)) + 1e-12
        noise = _colored_noise(x.size, spec.noise, rng)
        noise *= np.sqrt(speech_power / (10 ** (spec.snr_db / 10)) / (float(np.mean(noise**2)) + 1e-12))
        x = x + noise
        peak = float(np.max(np.abs(x)))
        if peak > 0.99:
            x = x * (0.99 / peak)
    return x.astype(np.float32)


def utterance_seed(seed: int, index: int) -> int:
    """The noise seed of utterance ``index`` of a corpus rendered with ``seed``."""
    return zlib.crc32(f"audio:{seed}:{index}".encode())


def render_many(texts: Sequence[str], specs: Sequence[VoiceSpec], *, seeds: Sequence[int]) -> list[np.ndarray]:
    """Render and degrade a batch (``seeds``: one noise seed per utterance); festival utterances go through
    one festival process."""
    out: list[np.ndarray | None] = [None] * len(texts)
    fest = [i for i, s in enumerate(specs) if s.engine == "festival"]
    for i, s in enumerate(specs):
        if s.engine == "espeak":
            out[i] = render_espeak(texts[i], s)
        elif s.engine == "flite":
            out[i] = render_flite(texts[i], s)
        elif s.engine != "festival":
            raise ValueError(f"unknown TTS engine {s.engine!r}")
    for i, audio in zip(fest, render_festival_batch([texts[i] for i in fest], [specs[i] for i in fest]), strict=True):
        out[i] = audio
    return [degrade(a, s, seed=sd) for a, s, sd in zip(out, specs, seeds, strict=True) if a is not None]
