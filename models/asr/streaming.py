"""Streaming Paraformer recognition: chunked encoder, CIF state carried across chunks, revisable partials.

Audio (16 kHz float) arrives in pieces of any size. Features are computed incrementally; every time
``chunk_ms`` of new LFR frames plus ``lookahead_ms`` of right context are available, the encoder runs on
``[left context | chunk | look-ahead]`` and keeps the outputs and CIF weights (alphas) of the chunk frames
only. CIF (:mod:`models.asr.cif`) integrates those alphas starting from the leftover weight and partial
embedding of the previous chunk. The parallel decoder then re-decodes all tokens fired so far against the
encoder memory so far: that partial hypothesis may revise earlier words. ``finish`` returns the final hypothesis of
the segment, then resets for the next one. By default the final is a second pass: the offline graph decodes the
whole segment at once, with full left context, as FunASR's "2pass" mode does. That costs one offline pass per
segment, a few ms per second of speech. With ``two_pass=False``, ``finish`` instead encodes the rest in chunks, adds
the CIF tail and decodes from the chunk encodings (one pass).

Model directories without the split graphs (FunASR's offline exports) are still streamed: the offline graph
re-decodes the whole segment so far at every chunk (correct, but its cost grows with the segment).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from models.asr.cif import CifState, cif_finish, cif_step
from models.asr.frontend import StreamingFrontend
from models.asr.runtime import ParaformerOnnx, Recognition


@dataclass(frozen=True)
class StreamingOptions:
    """Chunking in ms of 16 kHz audio (rounded to whole 60 ms LFR frames, at least one); ``two_pass``: the final
    hypothesis comes from the offline graph over the whole segment (else from the chunk encodings)."""

    chunk_ms: float = 600.0
    lookahead_ms: float = 300.0
    left_context_ms: float = 3000.0
    two_pass: bool = True  # the final hypothesis re-decodes the whole segment with the offline graph

    def frames(self, frame_ms: float) -> tuple[int, int, int]:
        """(chunk, look-ahead, left context) in LFR frames."""
        chunk = max(1, round(self.chunk_ms / frame_ms))
        return chunk, max(0, round(self.lookahead_ms / frame_ms)), max(0, round(self.left_context_ms / frame_ms))


@dataclass(frozen=True)
class AsrUpdate:
    """A hypothesis for the current segment: ``final`` ends the segment; partials may still change.

    ``audio_ms`` is the segment audio received when it was produced (ms of 16 kHz audio);
    ``compute_ms`` the wall-clock time spent producing it.
    """

    text: str
    final: bool
    audio_ms: float
    compute_ms: float
    num_tokens: int

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.text.split())


class StreamingRecognizer:
    """Feed audio, get partial :class:`AsrUpdate` s; ``finish`` gives the final one (one segment at a time)."""

    def __init__(self, model: ParaformerOnnx, opts: StreamingOptions | None = None) -> None:
        self.model = model
        self.opts = opts or StreamingOptions()
        frame_ms = model.config.frontend.lfr_frame_ms
        self.chunk, self.lookahead, self.left = self.opts.frames(frame_ms)
        self.reset()

    def reset(self) -> None:
        """Forget the current segment."""
        self._frontend = StreamingFrontend(self.model.config.frontend, self.model.cmvn)
        self._feats = np.zeros((0, self.model.config.frontend.feature_dim), dtype=np.float32)
        self._done = 0  # LFR frames already encoded (streaming) or decoded (fallback)
        self._memory: list[np.ndarray] = []
        self._ctc: list[np.ndarray] = []  # CTC log-probs of the encoded frames (graphs with a CTC head)
        self._fired: list[np.ndarray] = []
        self._cif: CifState | None = None
        self._samples = 0
        self._last_text = ""

    @property
    def audio_ms(self) -> float:
        return 1000.0 * self._samples / self.model.sample_rate

    def feed(self, audio: np.ndarray) -> list[AsrUpdate]:
        """Add 16 kHz float audio; returns a partial hypothesis when its text changed (else nothing)."""
        t0 = time.perf_counter()
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        self._samples += audio.size
        rows = self._frontend.accept(audio)
        if rows.shape[0]:
            self._feats = np.concatenate([self._feats, rows], axis=0)
        feats = self._feats
        progressed = False
        while feats.shape[0] >= self._done + self.chunk + self.lookahead:
            progressed = True
            if self.model.has_streaming:
                self._encode_chunk(feats, self._done + self.chunk, self._done + self.chunk + self.lookahead)
            else:
                self._done += self.chunk
        if not progressed:
            return []
        rec = self._partial(feats)
        if rec.text == self._last_text:
            return []
        self._last_text = rec.text
        return [self._update(rec, final=False, t0=t0)]

    def finish(self) -> AsrUpdate:
        """End of segment: the final hypothesis (CIF tail added); the recogniser is reset afterwards."""
        t0 = time.perf_counter()
        feats = np.concatenate([self._feats, self._frontend.finish()], axis=0)
        if self.model.has_streaming and not self.opts.two_pass:
            while self._done < feats.shape[0]:
                end = min(self._done + self.chunk, feats.shape[0])
                self._encode_chunk(feats, end, min(end + self.lookahead, feats.shape[0]))
            rec = self._final_streaming()
        else:
            rec = self.model.recognize_features(feats)
        update = self._update(rec, final=True, t0=t0)
        self.reset()
        return update

    # --- internals ---------------------------------------------------------------------------------------
    def _update(self, rec: Recognition, *, final: bool, t0: float) -> AsrUpdate:
        return AsrUpdate(
            text=rec.text, final=final, audio_ms=self.audio_ms,
            compute_ms=1000.0 * (time.perf_counter() - t0), num_tokens=len(rec.ids),
        )

    def _encode_chunk(self, feats: np.ndarray, end: int, right: int) -> None:
        """Encode frames ``[done, end)`` with left context and look-ahead up to ``right``; run CIF on them."""
        start = self._done
        win = max(0, start - self.left)
        enc, alphas, ctc = self.model.encode(feats[win:right])
        enc_c, alphas_c = enc[start - win : end - win], alphas[start - win : end - win]
        if ctc is not None:
            self._ctc.append(ctc[start - win : end - win])
        if self._cif is None:
            self._cif = CifState(dim=enc.shape[1], frames=start)
        out = cif_step(alphas_c, enc_c, self._cif, threshold=self.model.config.threshold)
        if len(out):
            self._fired.append(out.embeddings)
        self._memory.append(enc_c)
        self._done = end

    def _decode(self, fired: list[np.ndarray], *, final: bool) -> Recognition:
        if not fired or not self._memory:
            return Recognition(ids=(), text="", score=0.0)
        embeds = np.concatenate(fired, axis=0)
        if embeds.shape[0] == 0:
            return Recognition(ids=(), text="", score=0.0)
        logits = self.model.decode_embeddings(np.concatenate(self._memory, axis=0), embeds)
        # partials: LM fusion only; the final also gets CTC rescoring over all of the segment's frames
        ctc = np.concatenate(self._ctc, axis=0) if final and self._ctc else None
        return self.model.decode_logits(logits, drop_end_slot=final, ctc=ctc, partial=not final)

    def _partial(self, feats: np.ndarray) -> Recognition:
        if self.model.has_streaming:
            return self._decode(self._fired, final=False)
        return self.model.recognize_features(feats[: self._done], partial=True)

    def _final_streaming(self) -> Recognition:
        fired = list(self._fired)
        if self._cif is not None:
            tail = cif_finish(self._cif, tail=self.model.config.tail, threshold=self.model.config.threshold)
            if len(tail):
                fired.append(tail.embeddings)
        return self._decode(fired, final=True)


def stream_audio(
    recognizer: StreamingRecognizer, audio: np.ndarray, *, step_ms: float = 100.0
) -> tuple[list[AsrUpdate], AsrUpdate]:
    """Feed a whole utterance in ``step_ms`` pieces (as a microphone would): the partials and the final update."""
    step = max(1, int(recognizer.model.sample_rate * step_ms / 1000.0))
    partials: list[AsrUpdate] = []
    for i in range(0, len(audio), step):
        partials.extend(recognizer.feed(audio[i : i + step]))
    return partials, recognizer.finish()
