"""Streaming Whisper-Paraformer: chunked Whisper encoding with bounded left context and look-ahead, CIF carried.

Audio (16 kHz float) arrives in pieces of any size. Each time ``chunk_ms`` of new audio plus ``lookahead_ms`` of
right context is there, the Whisper encoder runs on the window ``[left context | chunk | look-ahead]`` (at most
``left_context_ms`` back, so the cost per chunk is bounded however long the segment), the head's streaming encoder
runs on those frames, and the chunk's frames, CIF weights and CTC log-probs are kept. CIF continues from the
previous chunk's leftover weight; the parallel decoder re-decodes every token fired so far for a partial. The final
is, by default, a second pass over the whole segment (``two_pass``), as for :mod:`models.asr.streaming`.
"""

from __future__ import annotations

import time

import numpy as np

from models.asr.cif import CifState, cif_step
from models.asr.streaming import AsrUpdate, StreamingOptions, StreamingRecognizer
from models.asr.wparaformer.encoder import encode_span
from models.asr.wparaformer.features import ENCODER_HOP, stack_frames
from models.asr.wparaformer.runtime import WhisperParaformer

DEFAULT_LEFT_CONTEXT_MS = 6000.0


def whisper_streaming_options(chunk_ms: float = 600.0, lookahead_ms: float = 300.0, *,
                              left_context_ms: float = DEFAULT_LEFT_CONTEXT_MS, two_pass: bool = True
                              ) -> StreamingOptions:
    return StreamingOptions(chunk_ms=chunk_ms, lookahead_ms=lookahead_ms, left_context_ms=left_context_ms,
                            two_pass=two_pass)


class WhisperStreamingRecognizer(StreamingRecognizer):
    """Feed 16 kHz audio, get partial :class:`AsrUpdate` s; ``finish`` gives the segment's final one."""

    model: WhisperParaformer

    def __init__(self, model: WhisperParaformer, opts: StreamingOptions | None = None) -> None:
        self.model = model
        self.opts = opts or whisper_streaming_options()
        self.chunk, self.lookahead, self.left = self.opts.frames(model.frame_ms)
        self.reset()

    @property
    def _audio(self) -> np.ndarray:
        return self._buf[: self._samples]

    def reset(self) -> None:
        self._buf = np.zeros(16000 * 4, dtype=np.float32)  # the segment's audio, grown by doubling
        self._done = 0  # head frames (stack × 20 ms) already encoded
        self._memory: list[np.ndarray] = []
        self._ctc: list[np.ndarray] = []
        self._fired: list[np.ndarray] = []
        self._cif: CifState | None = None
        self._samples = 0
        self._last_text = ""

    def feed(self, audio: np.ndarray) -> list[AsrUpdate]:
        """Add 16 kHz float audio; a partial hypothesis when its text changed (else nothing)."""
        t0 = time.perf_counter()
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if self._samples + audio.size > self._buf.size:
            grown = np.zeros(max(2 * self._buf.size, self._samples + audio.size), dtype=np.float32)
            grown[: self._samples] = self._buf[: self._samples]
            self._buf = grown
        self._buf[self._samples : self._samples + audio.size] = audio
        self._samples += audio.size
        total = self._samples // (ENCODER_HOP * self.model.stack)  # complete head frames
        progressed = False
        while total >= self._done + self.chunk + self.lookahead:
            self._encode_frames(self._done + self.chunk, total)
            progressed = True
        if not progressed:
            return []
        rec = self._decode(self._fired, final=False)
        if rec.text == self._last_text:
            return []
        self._last_text = rec.text
        return [self._update(rec, final=False, t0=t0)]

    def finish(self) -> AsrUpdate:
        """End of segment: the final hypothesis; the recogniser is reset afterwards."""
        t0 = time.perf_counter()
        if self.opts.two_pass:
            rec = self.model.recognize_features(self.model.features(self._audio))
        else:
            total = -(-(self._samples // ENCODER_HOP) // self.model.stack)
            while self._done < total:
                self._encode_frames(min(self._done + self.chunk, total), total)
            rec = self._final_streaming()
        update = self._update(rec, final=True, t0=t0)
        self.reset()
        return update

    def _encode_frames(self, end: int, total: int) -> None:
        """Encode head frames ``[done, end)`` (look-ahead up to ``total``) and run CIF on them."""
        k = self.model.stack
        start = self._done
        win, right = max(0, start - self.left), min(total, end + self.lookahead)
        have = self._samples // ENCODER_HOP
        whisper = encode_span(self.model.encoder, self._audio, win * k, min(right * k, have), left=0, right=0)
        enc, alphas, ctc = self.model.encode(stack_frames(whisper, k))
        lo, hi = start - win, end - win
        if ctc is not None:
            self._ctc.append(ctc[lo:hi])
        if self._cif is None:
            self._cif = CifState(dim=enc.shape[1], frames=start)
        out = cif_step(alphas[lo:hi], enc[lo:hi], self._cif, threshold=self.model.config.threshold)
        if len(out):
            self._fired.append(out.embeddings)
        self._memory.append(enc[lo:hi])
        self._done = end
