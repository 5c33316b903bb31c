"""The autoregressive comparator: Whisper-base's own decoder (CTranslate2) streamed with LocalAgreement-2.

Offline, :class:`WhisperAr` transcribes a window (≤ 30 s, not padded to 30 s, the same input the NAR head gets)
with Whisper's decoder, greedy or beam search. Streaming, :class:`LocalAgreementRecognizer` re-transcribes the
segment so far every ``chunk_ms`` with the committed words forced as the decoder's prefix, and commits the longest
common word prefix of the last two hypotheses (LocalAgreement-2, Macháček et al. 2023, as in whisper_streaming).
Partials show the committed words plus the latest unconfirmed tail; the final is a second pass over the whole
segment without a forced prefix (a prefix that already covers all the audio makes Whisper transcribe the segment
again after it), as the NAR recognisers' two-pass finals. Same :class:`models.asr.streaming.AsrUpdate` records.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.asr.streaming import AsrUpdate
from models.asr.wparaformer.features import ENCODER_HOP, SAMPLE_RATE, log_mel
from models.asr.wparaformer.package import WhisperModelError, whisper_base_dir

PROMPT_TOKENS = ("<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>")
MAX_SAMPLES = 30 * SAMPLE_RATE
PAD_S = 1.0
MAX_TOKENS_PER_S = 12.0
NO_REPEAT_NGRAM = 0
_PUNCT = re.compile(r"[^\w\s']")


def spoken_form(text: str) -> str:
    """Whisper's written text as our recognisers output it: lower case, punctuation removed."""
    t = _PUNCT.sub(" ", text.lower().replace("-", " "))
    return " ".join(w.strip("'") for w in t.split() if w.strip("'"))


class WhisperAr:
    """Whisper's encoder + autoregressive decoder over a local CTranslate2 Whisper directory."""

    def __init__(self, model_dir: str | Path | None = None, *, device: str = "cpu", threads: int = 1,
                 beam: int = 1) -> None:
        import ctranslate2
        import tokenizers

        self.model_dir = whisper_base_dir(model_dir)
        try:
            self.model = ctranslate2.models.Whisper(str(self.model_dir), device=device,
                                                    compute_type="int8" if device == "cpu" else "float16",
                                                    intra_threads=threads, inter_threads=1)
            self.tokenizer = tokenizers.Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        except (RuntimeError, ValueError, OSError) as e:
            raise WhisperModelError(f"cannot load the Whisper model in {self.model_dir}: {e}") from None
        self.prompt: list[int] = []
        for t in PROMPT_TOKENS:
            i = self.tokenizer.token_to_id(t)
            if i is None:
                raise WhisperModelError(f"{self.model_dir}/tokenizer.json lacks Whisper's task token {t}")
            self.prompt.append(int(i))
        self.beam = beam
        self.sample_rate = SAMPLE_RATE

    @property
    def decoding_summary(self) -> str:
        return f"Whisper AR decoder, {'greedy' if self.beam == 1 else f'beam {self.beam}'}"

    def transcribe_written(self, audio: np.ndarray, *, prefix: str = "") -> str:
        """Whisper's written text of ≤ 30 s of 16 kHz audio, continuing ``prefix`` (included in the result)."""
        import ctranslate2

        audio = np.asarray(audio, dtype=np.float32).reshape(-1)[-MAX_SAMPLES:]
        if audio.size < ENCODER_HOP:
            return prefix
        seconds = audio.size / SAMPLE_RATE
        # a little trailing silence: a window cut mid-word otherwise sends the decoder into repetition loops
        audio = np.concatenate([audio, np.zeros(int(PAD_S * SAMPLE_RATE), np.float32)])[-MAX_SAMPLES:]
        mel = log_mel(audio[: (audio.size // ENCODER_HOP) * ENCODER_HOP])
        pre = self.tokenizer.encode(" " + prefix.strip(), add_special_tokens=False).ids if prefix.strip() else []
        # at most MAX_TOKENS_PER_S new tokens per second of audio: bounds a hallucinated loop's length and cost
        limit = min(448, len(self.prompt) + len(pre) + int(MAX_TOKENS_PER_S * seconds) + 4)
        res = self.model.generate(ctranslate2.StorageView.from_array(mel[None]), [self.prompt + pre],
                                  beam_size=self.beam, max_length=limit, suppress_blank=True,
                                  no_repeat_ngram_size=NO_REPEAT_NGRAM)
        ids = [i for i in res[0].sequences_ids[0] if i < self.prompt[0]]  # drop special / timestamp tokens
        return str(self.tokenizer.decode(ids)).strip()

    def transcribe(self, audio: np.ndarray) -> str:
        """Spoken-form text (lower case, no punctuation) of ≤ 30 s of 16 kHz audio; longer audio in 30 s pieces.
        A transcript that starts over (Whisper looping on a short window) is cut where it repeats."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        parts = [" ".join(_cut_restart(self.transcribe_written(audio[i : i + MAX_SAMPLES]).split(), 0))
                 for i in range(0, max(1, audio.size), MAX_SAMPLES)]
        return spoken_form(" ".join(parts))


def _same(a: str, b: str) -> bool:
    """Two written words agree when their spoken forms do (``Americans,`` = ``Americans``)."""
    return spoken_form(a) == spoken_form(b)


def _cut_restart(words: list[str], keep: int, *, n: int = 3) -> list[str]:
    """Drop a continuation that starts the segment over: from the first place after ``keep`` words where the
    segment's first ``n`` words come again (Whisper re-transcribing audio its forced prefix already covers)."""
    if len(words) < 2 * n:
        return words
    head = [spoken_form(w) for w in words[:n]]
    for j in range(max(keep, n), len(words) - n + 1):
        if [spoken_form(w) for w in words[j : j + n]] == head:
            return words[:j]
    return words


@dataclass(frozen=True)
class LocalAgreementOptions:
    """``chunk_ms``: how often the segment is re-transcribed (ms of 16 kHz audio)."""

    chunk_ms: float = 1000.0


class LocalAgreementRecognizer:
    """LocalAgreement-2 over :class:`WhisperAr` for one segment at a time (the streaming ``Recognizer`` protocol)."""

    def __init__(self, model: WhisperAr, opts: LocalAgreementOptions | None = None) -> None:
        self.model = model
        self.opts = opts or LocalAgreementOptions()
        self.step = max(ENCODER_HOP, int(SAMPLE_RATE * self.opts.chunk_ms / 1000))
        self.reset()

    def reset(self) -> None:
        self._pieces: list[np.ndarray] = []
        self._samples = 0
        self._next = self.step
        self._committed: list[str] = []  # written-form words agreed by two consecutive hypotheses
        self._previous: list[str] | None = None
        self._last_text = ""

    @property
    def committed(self) -> str:
        return spoken_form(" ".join(self._committed))

    def _audio(self) -> np.ndarray:
        return np.concatenate(self._pieces) if self._pieces else np.zeros(0, np.float32)

    def feed(self, audio: np.ndarray) -> list[AsrUpdate]:
        t0 = time.perf_counter()
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        self._pieces.append(audio)
        self._samples += audio.size
        if self._samples < self._next:
            return []
        self._next = self._samples + self.step
        hyp = self.model.transcribe_written(self._audio(), prefix=" ".join(self._committed)).split()
        if hyp[: len(self._committed)] != self._committed:  # the forced prefix came back re-spelled: realign
            hyp = self._committed + hyp[len(self._committed) :]
        hyp = _cut_restart(hyp, len(self._committed))
        if self._previous is not None:
            n = len(self._committed)
            while n < min(len(hyp), len(self._previous)) and _same(hyp[n], self._previous[n]):
                n += 1
            self._committed = hyp[:n]
        self._previous = hyp
        text = spoken_form(" ".join(hyp))
        if text == self._last_text:
            return []
        self._last_text = text
        return [self._update(text, final=False, t0=t0)]

    def finish(self) -> AsrUpdate:
        t0 = time.perf_counter()
        text = spoken_form(" ".join(_cut_restart(self.model.transcribe_written(self._audio()).split(), 0)))
        update = self._update(text, final=True, t0=t0)
        self.reset()
        return update

    def _update(self, text: str, *, final: bool, t0: float) -> AsrUpdate:
        return AsrUpdate(text=text, final=final, audio_ms=1000.0 * self._samples / SAMPLE_RATE,
                         compute_ms=1000.0 * (time.perf_counter() - t0), num_tokens=len(text.split()))

