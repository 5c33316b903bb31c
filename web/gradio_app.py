"""The Gradio live-caption page: microphone streaming or a file, the same streaming core as the CLI and server.

Layout: policy and latency controls; the microphone (streamed to the server in 0.5 s pieces) or an uploaded
file; the caption (finished lines, then the current line with its stable words plain and its revisable tail
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

from app.policies import PolicyConfig
from app.speech_session import SpeechModels
from streaming.speech_pipeline import CaptionEvent, SpeechPipeline
from streaming.subtitles import VTT_HEADER, segment_cues, srt_block, vtt_block

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
    """One browser tab's stream: its pipeline, what is on screen and the subtitle files."""

    pipeline: SpeechPipeline
    finals: list[CaptionEvent] = field(default_factory=list)
    current: CaptionEvent | None = None
    latencies: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    files: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="simulsub-web-")))
    segments_written: int = 0

    def feed(self, samples: np.ndarray) -> None:
        self.take(self.pipeline.feed(samples))

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
        lat = np.array(self.latencies)
        audio_s = self.pipeline.audio_ms / 1000.0
        return (f"latency {lat[-1]:.0f} ms now · median {np.median(lat):.0f} ms · p95 {np.percentile(lat, 95):.0f} ms"
                f" · {len(self.finals)} segments · {audio_s:.1f} s of audio")

    def subtitle_files(self) -> list[str]:
        srt, vtt = self.files / "captions.srt", self.files / "captions.vtt"
        n = 0
        with srt.open("w", encoding="utf-8") as fs, vtt.open("w", encoding="utf-8") as fv:
            fv.write(VTT_HEADER)
            for e in self.finals:
                for cue in segment_cues(e.target, e.start_ms, e.end_ms):
                    n += 1
                    fs.write(srt_block(n, cue))
                    fv.write(vtt_block(cue))
        return [str(srt), str(vtt)]


def to_float_mono(sr: int, data: np.ndarray) -> np.ndarray:
    """Gradio's (rate, int16/float array [n] or [n, ch]) → float32 mono 16 kHz."""
    x = np.asarray(data)
    if x.dtype.kind == "i":
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    elif x.dtype.kind == "u":
        x = (x.astype(np.float32) - 128.0) / 128.0
    x = x.astype(np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if sr != 16000:
        import soxr

        x = soxr.resample(x, sr, 16000).astype(np.float32)
    return x


def llm_level(latency: int) -> str:
    """The page's 0–8 latency knob as the LLM's latency prompt."""
    return "low" if latency <= 2 else "medium" if latency <= 5 else "high"


def policy_for(base: PolicyConfig, name: str, latency: int) -> PolicyConfig:
    """The page's latency knob: re-translation hides the last ``latency`` words; wait-k waits ``latency + 1``;
    the LLM is asked for low (0–2), medium (3–5) or high (6–8) latency."""
    same = name == base.name  # every other option (beam, prefix bias, shortlist, languages, …) is the CLI's
    return replace(base, name=name, model=base.model if same else None,
                   mask_k=0 if name in ("waitk", "llm") else latency, k=latency + 1, latency=llm_level(latency))


def page_policies(base: PolicyConfig) -> list[str]:
    """The policies the page offers: the LLM only when its model is there."""
    from app.profiles import DEFAULT_LLM_MODEL

    llm = (base.llm_model or DEFAULT_LLM_MODEL).is_dir()
    return ["reta", "fretna", "waitk", *(["llm"] if llm else [])]


def build_app(models: SpeechModels) -> Any:
    """The Gradio Blocks app (launched by ``simulsub web``)."""
    import gradio as gr

    def new_session(policy: str, latency: int) -> PageSession:
        from app.errors import UserError

        try:
            return PageSession(models.pipeline(policy_for(models.cfg.policy, policy, int(latency))))
        except UserError as e:  # e.g. a policy whose model is missing: say so on the page
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

    def reset() -> tuple[Any, ...]:
        return None, empty_caption(), "", "latency: –", None

    with gr.Blocks(title="simulsub live captions") as demo:
        gr.Markdown("## simulsub — live translated captions (English → German)")
        state = gr.State(None)
        with gr.Row():
            policy = gr.Dropdown(page_policies(models.cfg.policy), value=models.cfg.policy.name, label="policy",
                                 info="reta/fretna revise their tail; waitk and llm never revise", scale=1)
            latency = gr.Slider(0, 8, value=max(models.cfg.policy.mask_k, 2), step=1, label="latency (words)",
                                info="words held back: steadier captions, later", scale=2)
        caption = gr.HTML(empty_caption(), elem_id="caption")
        figures = gr.Markdown("latency: –", elem_id="figures")
        with gr.Row():
            mic = gr.Audio(sources=["microphone"], streaming=True, type="numpy", label="microphone",
                           elem_id="mic")
            upload = gr.Audio(sources=["upload"], type="filepath", label="or a recording", elem_id="upload")
        run_file = gr.Button("Translate the recording", elem_id="run-file")
        transcript = gr.Textbox(label="source transcript", lines=3, interactive=False, elem_id="transcript")
        downloads = gr.File(label="subtitles (SRT, VTT)", file_count="multiple", interactive=False,
                            elem_id="downloads")
        outputs = [state, caption, transcript, figures]
        mic.stream(on_stream, [mic, state, policy, latency], outputs, stream_every=0.5, time_limit=None,
                   concurrency_limit=None)
        mic.stop_recording(on_stop, [state], [*outputs, downloads])
        mic.start_recording(reset, None, [*outputs, downloads])
        run_file.click(on_file, [upload, policy, latency], [*outputs, downloads])
    return demo

