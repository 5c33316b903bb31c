"""Audio sources for the drivers: files, raw PCM on a byte stream, the microphone; paced or as fast as possible.

Every source yields :class:`AudioChunk` s of float32 mono 16 kHz samples with their start time in ms of
stream audio. Files are decoded block by block (soundfile) and resampled with a streaming soxr resampler,
so memory stays flat for hour-long recordings.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from app.errors import UserError
from streaming.pcm import Pcm16Decoder
from streaming.types import SAMPLE_RATE

DEFAULT_CHUNK_MS = 100.0


@dataclass(frozen=True)
class AudioChunk:
    """``samples``: float32 mono at 16 kHz; ``t_ms``: start of the chunk in ms since stream start."""

    samples: np.ndarray
    t_ms: float

    @property
    def duration_ms(self) -> float:
        return self.samples.size * 1000.0 / SAMPLE_RATE


class _Rechunker:
    """Collects 16 kHz samples and hands them out in chunks of ``chunk`` samples with running start times."""

    def __init__(self, chunk_ms: float) -> None:
        if chunk_ms <= 0:
            raise UserError("the chunk length must be positive")
        self.chunk = max(1, round(chunk_ms * SAMPLE_RATE / 1000))
        self.pending = np.zeros(0, dtype=np.float32)
        self.emitted = 0

    def push(self, samples: np.ndarray, *, last: bool = False) -> Iterator[AudioChunk]:
        self.pending = np.concatenate([self.pending, samples.astype(np.float32, copy=False)])
        while self.pending.size >= self.chunk or (last and self.pending.size):
            out, self.pending = self.pending[: self.chunk], self.pending[self.chunk :]
            yield AudioChunk(out, self.emitted * 1000.0 / SAMPLE_RATE)
            self.emitted += out.size


def file_source(path: str | Path, *, chunk_ms: float = DEFAULT_CHUNK_MS) -> Iterator[AudioChunk]:
    """Stream any file soundfile reads (wav, flac, ogg/opus, mp3), down-mixed and resampled to 16 kHz."""
    import soundfile as sf
    import soxr

    p = Path(path)
    if not p.is_file():
        raise UserError(f"audio file {p} does not exist")
    try:
        f = sf.SoundFile(str(p))
    except (RuntimeError, sf.LibsndfileError) as e:
        raise UserError(f"cannot read audio file {p}: {e}") from None
    with f:
        if f.frames == 0:
            raise UserError(f"audio file {p} is empty")
        rechunk = _Rechunker(chunk_ms)
        resampler = None if f.samplerate == SAMPLE_RATE else soxr.ResampleStream(f.samplerate, SAMPLE_RATE, 1)
        block = max(1024, int(f.samplerate * chunk_ms / 1000))
        blocks = f.blocks(blocksize=block, dtype="float32", always_2d=True)
        while True:
            try:
                data = next(blocks, None)
            except (RuntimeError, sf.LibsndfileError) as e:  # truncated or corrupt past the header
                at = rechunk.emitted / SAMPLE_RATE
                raise UserError(f"cannot decode audio file {p} after {at:.1f} s: {e}") from None
            if data is None:
                break
            mono = data.mean(axis=1)
            if resampler is not None:
                mono = resampler.resample_chunk(mono)
            yield from rechunk.push(mono)
        tail = resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True) if resampler else np.zeros(0)
        yield from rechunk.push(tail, last=True)


def pcm_source(
    stream: BinaryIO, *, sample_rate: int = SAMPLE_RATE, chunk_ms: float = DEFAULT_CHUNK_MS
) -> Iterator[AudioChunk]:
    """Raw signed 16-bit little-endian mono PCM at ``sample_rate`` Hz (e.g. ``ffmpeg -f s16le -ac 1 -``)."""
    import soxr

    if sample_rate <= 0:
        raise UserError("the PCM sample rate must be positive")
    rechunk = _Rechunker(chunk_ms)
    resampler = None if sample_rate == SAMPLE_RATE else soxr.ResampleStream(sample_rate, SAMPLE_RATE, 1)
    decoder = Pcm16Decoder()
    read_bytes = 2 * max(1, int(sample_rate * chunk_ms / 1000))
    while True:
        data = stream.read(read_bytes)
        if not data:
            break
        samples = decoder.decode(data)
        if resampler is not None:
            samples = resampler.resample_chunk(samples)
        yield from rechunk.push(samples)
    tail = resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True) if resampler else np.zeros(0)
    yield from rechunk.push(tail, last=True)


def parse_device(value: str | None) -> str | int | None:
    """An input device option as sounddevice takes it: an index (all digits), a name, or None (the default)."""
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def list_input_devices() -> str:
    """The input devices, one ``index: name (channels, rate)`` line each (``--list-devices``)."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:
        raise UserError(f"listing devices needs sounddevice and PortAudio ({e}): pip install sounddevice and "
                        "apt-get install libportaudio2") from None
    devices = [(i, d) for i, d in enumerate(sd.query_devices()) if d.get("max_input_channels", 0) > 0]
    if not devices:
        return "no input devices found"
    return "\n".join(f"{i}: {d['name']} ({d['max_input_channels']} ch, {d['default_samplerate']:.0f} Hz)"
                     for i, d in devices)


def microphone_source(device: str | int | None = None, *, chunk_ms: float = DEFAULT_CHUNK_MS) -> Iterator[AudioChunk]:
    """Live 16 kHz mono capture with sounddevice, imported only here (needs PortAudio: libportaudio2)."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:
        raise UserError(f"microphone capture needs sounddevice and PortAudio ({e}): pip install sounddevice and "
                        "apt-get install libportaudio2") from None
    frames: queue.Queue[np.ndarray] = queue.Queue()
    rechunk = _Rechunker(chunk_ms)

    def callback(indata: np.ndarray, n: int, t: object, status: object) -> None:
        frames.put(indata[:, 0].copy())

    try:
        stream = sd.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="float32", device=device,
                                blocksize=rechunk.chunk, callback=callback)
    except Exception as e:  # PortAudioError, ValueError for unknown devices
        raise UserError(f"cannot open microphone {device if device is not None else '(default)'}: {e}") from None
    with stream:
        while True:
            yield from rechunk.push(frames.get())


def paced(
    chunks: Iterable[AudioChunk], *, clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[AudioChunk]:
    """Release each chunk no earlier than its end time in real time (for replaying files as if live)."""
    start = clock()
    for chunk in chunks:
        due = start + (chunk.t_ms + chunk.duration_ms) / 1000.0
        wait = due - clock()
        if wait > 0:
            sleep(wait)
        yield chunk
