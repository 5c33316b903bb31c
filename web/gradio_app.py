"""The Gradio live-caption page: microphone, a file or typed text, the same streaming core as the CLI and server.

Layout: policy and latency controls; the microphone (streamed to the server in 0.5 s pieces), an uploaded
file, or text (pasted or typed, read word by word through :class:`streaming.text_pipeline.TextPipeline`); the
caption (finished lines, then the current line with its stable words plain and its revisable tail
grey and italic); the source transcript; live latency figures; SRT/VTT downloads of what has been final.
Each browser session gets its own pipeline over one shared set of loaded models.
"""

from __future__ import annotations

import html
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from app.policies import PolicyConfig, build_policy, get_policy
from app.sinks import SrtFile, VttFile
from app.speech_session import SpeechModels
from streaming.events import CaptionEvent
from streaming.metrics.runtime import median_and_p95
from streaming.speech_pipeline import SpeechPipeline
from streaming.text_pipeline import TextPipeline, TextPipelineOptions
from streaming.types import SAMPLE_RATE

CSS = """
#caption { font-size: 1.35rem; line-height: 1.5; min-height: 6rem; }
#caption .final { color: var(--body-text-color); margin: .2rem 0; }
#caption .current .stable { color: var(--body-text-color); }
#caption .current .tail { color: #8c8c8c; font-style: italic; }
#caption .empty { color: #8c8c8c; }
"""


def empty_caption() -> str:
    return '<div id="caption-inner"><p class="empty">Captions appear here while you speak.</p></div>'


@dataclass
class PageSession:
    """One browser tab's stream (audio or text): its pipeline, what is on screen and the subtitle files."""

    pipeline: SpeechPipeline | TextPipeline
    finals: list[CaptionEvent] = field(default_factory=list)
    current: CaptionEvent | None = None
    latencies: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    files: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="simulsub-web-")))
    segments_written: int = 0

    def feed(self, samples: np.ndarray | str) -> None:
        """16 kHz float32 mono audio for an audio session; words for a text session."""
        if isinstance(self.pipeline, TextPipeline):
            if not isinstance(samples, str):
                raise TypeError("a text session reads words, not audio")
            self.take(self.pipeline.feed(samples))
        else:
            self.take(self.pipeline.feed(np.asarray(samples)))

    def take(self, events: list[CaptionEvent]) -> None:
        for e in events:
            self.latencies.append(e.latency_ms)
            if e.type == "final":
                self.finals.append(e)
                self.current = None
            else:
                self.current = e

    def finish(self) -> None:
        self.take(self.pipeline.finish())

    def caption_html(self) -> str:
        parts = [f'<p class="final">{html.escape(e.target)}</p>' for e in self.finals[-8:] if e.target]
        if self.current is not None:
            words = self.current.target.split()
            stable = html.escape(" ".join(words[: self.current.stable]))
            tail = html.escape(" ".join(words[self.current.stable :]))
            parts.append(f'<p class="current"><span class="stable">{stable}</span> '
                         f'<span class="tail">{tail}</span></p>')
        if not parts:
            return empty_caption()
        return '<div id="caption-inner">' + "".join(parts) + "</div>"

    def transcript(self) -> str:
        lines = [e.source for e in self.finals[-8:]]
        if self.current is not None:
            lines.append(self.current.source + " …")
        return "\n".join(lines)

    def figures(self) -> str:
        if not self.latencies:
            return "latency: –"
        median, p95 = median_and_p95(self.latencies)
        if isinstance(self.pipeline, TextPipeline):
            read = f"{self.pipeline.words_read} words"
        else:
            read = f"{self.pipeline.audio_ms / 1000.0:.1f} s of audio"
        return (f"latency {self.latencies[-1]:.0f} ms now · median {median:.0f} ms · p95 {p95:.0f} ms"
                f" · {len(self.finals)} segments · {read}")

    def subtitle_files(self) -> list[str]:
        """SRT and WebVTT of the finals so far (stream times), written afresh into this tab's folder."""
        srt, vtt = SrtFile.open(self.files / "captions.srt"), VttFile.open(self.files / "captions.vtt")
        for e in self.finals:
            for sink in (srt, vtt):
                sink.add(e.target, e.start_ms, e.end_ms)
        for sink in (srt, vtt):
            sink.commit()
        return [str(srt.path), str(vtt.path)]


def to_float_mono(sr: int, data: np.ndarray) -> np.ndarray:
    """Gradio's (rate in Hz, int16/float array [n] or [n, ch]) → float32 mono 16 kHz
    (:func:`streaming.pcm.to_float32_mono`, then soxr when the rate differs)."""
    from streaming.pcm import to_float32_mono

    x = to_float32_mono(data)
    if sr != SAMPLE_RATE:
        import soxr

        x = soxr.resample(x, sr, SAMPLE_RATE).astype(np.float32)
    return x


def llm_level(latency: int) -> str:
    """The page's 0–8 latency knob as the LLM's latency prompt."""
    return "low" if latency <= 2 else "medium" if latency <= 5 else "high"


def policy_for(base: PolicyConfig, name: str, latency: int) -> PolicyConfig:
    """The page's latency knob: re-translation hides the last ``latency`` words; wait-k waits ``latency + 1``;
    the LLM is asked for low (0–2), medium (3–5) or high (6–8) latency."""
    same = name == base.name  # every other option (beam, prefix bias, shortlist, languages, …) is the CLI's
    return replace(base, name=name, model=base.model if same else None,
                   mask_k=latency if get_policy(name).revises else 0, k=latency + 1, latency=llm_level(latency))


TEXT_WORDS_PER_REFRESH = 3
"""A typed or pasted text refreshes the page every this many words."""


def text_pipeline(cfg: PolicyConfig, models: SpeechModels) -> TextPipeline:
    """A text stream over ``cfg``'s policy (models shared with every other tab); stream time = wall ms."""
    started = time.monotonic()
    return TextPipeline(build_policy(cfg, models.translators), TextPipelineOptions(mask_k=cfg.mask_k),
                        clock=lambda: (time.monotonic() - started) * 1000.0)


def revision_note(names: list[str]) -> str:
    """The policy menu's note: which policies revise their captions' tails and which never do."""
    revise = [n for n in names if get_policy(n).revises]
    never = [n for n in names if not get_policy(n).revises]
    parts = [f"{'/'.join(revise)} revise their tail"] if revise else []
    parts += [f"{' and '.join(never)} never revise"] if never else []
    return "; ".join(parts)


def page_policies(base: PolicyConfig) -> list[str]:
    """The registered policies the page offers: those whose models are there (e.g. the LLM only with its model)."""
    from app.policies import available_policies

    return list(available_policies(base))


def build_app(models: SpeechModels) -> Any:
    """The Gradio Blocks app (launched by ``simulsub web``)."""
    import gradio as gr

    def new_session(policy: str, latency: int) -> PageSession:
        from app.errors import UserError

        try:
            return PageSession(models.pipeline(policy_for(models.cfg.policy, policy, int(latency))))
        except UserError as e:  # e.g. a policy whose model is missing: say so on the page
            raise gr.Error(str(e)) from None

    def new_text_session(policy: str, latency: int) -> PageSession:
        from app.errors import UserError

        cfg = policy_for(models.cfg.policy, policy, int(latency))
        try:
            return PageSession(text_pipeline(cfg, models))
        except UserError as e:
            raise gr.Error(str(e)) from None

    def on_stream(chunk: Any, state: PageSession | None, policy: str, latency: int) -> tuple[Any, ...]:
        if state is None:
            state = new_session(policy, latency)
        if chunk is not None:
            sr, data = chunk
            state.feed(to_float_mono(int(sr), data))
        return state, state.caption_html(), state.transcript(), state.figures()

    def on_stop(state: PageSession | None) -> tuple[Any, ...]:
        if state is None:
            return None, gr.update(), gr.update(), gr.update(), gr.update()
        state.finish()
        return state, state.caption_html(), state.transcript(), state.figures(), state.subtitle_files()

    def on_file(path: str | None, policy: str, latency: int) -> Any:
        if not path:
            raise gr.Error("choose an audio file first")
        from app.audio_sources import file_source

        state = new_session(policy, latency)
        try:
            for i, chunk in enumerate(file_source(path)):
                state.feed(chunk.samples)
                if i % 10 == 9:
                    yield state, state.caption_html(), state.transcript(), state.figures(), gr.update()
        except Exception as e:  # soundfile/soxr errors: tell the user, keep the page alive
            raise gr.Error(f"cannot read {Path(path).name}: {e}") from None
        state.finish()
        yield state, state.caption_html(), state.transcript(), state.figures(), state.subtitle_files()

    def on_text(text: str | None, policy: str, latency: int) -> Any:
        words = (text or "").split()
        if not words:
            raise gr.Error("type or paste some text first")
        state = new_text_session(policy, latency)
        for i, word in enumerate(words):  # word by word, as a person types or a transcriber writes
            state.feed(word)
            if i % TEXT_WORDS_PER_REFRESH == TEXT_WORDS_PER_REFRESH - 1:
                yield state, state.caption_html(), state.transcript(), state.figures(), gr.update()
        state.finish()
        yield state, state.caption_html(), state.transcript(), state.figures(), state.subtitle_files()

    def reset() -> tuple[Any, ...]:
        return None, empty_caption(), "", "latency: –", None

    with gr.Blocks(title="simulsub live captions") as demo:
        gr.Markdown("## simulsub — live translated captions (English → German)")
        state = gr.State(None)
        with gr.Row():
            policy = gr.Dropdown(page_policies(models.cfg.policy), value=models.cfg.policy.name, label="policy",
                                 info=revision_note(page_policies(models.cfg.policy)), scale=1)
            latency = gr.Slider(0, 8, value=max(models.cfg.policy.mask_k, 2), step=1, label="latency (words)",
                                info="words held back: steadier captions, later", scale=2)
        caption = gr.HTML(empty_caption(), elem_id="caption")
        figures = gr.Markdown("latency: –", elem_id="figures")
        with gr.Row():
            mic = gr.Audio(sources=["microphone"], streaming=True, type="numpy", label="microphone",
                           elem_id="mic")
            upload = gr.Audio(sources=["upload"], type="filepath", label="or a recording", elem_id="upload")
        run_file = gr.Button("Translate the recording", elem_id="run-file")
        with gr.Row():
            typed = gr.Textbox(label="or text (read word by word; . ! ? end a sentence)", lines=2, scale=4,
                               elem_id="typed")
            run_text = gr.Button("Translate the text", elem_id="run-text", scale=1)
        transcript = gr.Textbox(label="source transcript", lines=3, interactive=False, elem_id="transcript")
        downloads = gr.File(label="subtitles (SRT, VTT)", file_count="multiple", interactive=False,
                            elem_id="downloads")
        outputs = [state, caption, transcript, figures]
        mic.stream(on_stream, [mic, state, policy, latency], outputs, stream_every=0.5, time_limit=None,
                   concurrency_limit=None)
        mic.stop_recording(on_stop, [state], [*outputs, downloads])
        mic.start_recording(reset, None, [*outputs, downloads])
        run_file.click(on_file, [upload, policy, latency], [*outputs, downloads])
        run_text.click(on_text, [typed, policy, latency], [*outputs, downloads])
    return demo

