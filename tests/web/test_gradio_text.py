"""The Gradio page's text mode and subtitle downloads, without a browser: the same TextPipeline as the server."""

from pathlib import Path
from types import SimpleNamespace

from app.policies import ModelCache, PolicyConfig
from streaming.policies.reta import RetaPolicy
from streaming.text_pipeline import TextPipeline
from tests.streaming.fakes import LexiconTranslator
from web.gradio_app import PageSession, policy_for, revision_note, text_pipeline


def test_text_session_captions_and_subtitles(tmp_path: Path) -> None:
    clock = iter(range(0, 100_000, 250))
    state = PageSession(TextPipeline(RetaPolicy(LexiconTranslator()), clock=lambda: float(next(clock))),
                        files=tmp_path)
    for word in ["a", "woman", "walks.", "the", "man", "runs"]:
        state.feed(word)
    assert [e.target for e in state.finals] == ["eine Frau geht ."]
    assert state.current is not None and state.current.target.startswith("der Mann")
    assert "the man runs …" in state.transcript()
    state.finish()
    assert [e.target for e in state.finals] == ["eine Frau geht .", "der Mann rennt"]
    assert "2 segments" in state.figures() and "6 words" in state.figures()
    srt, vtt = (Path(p) for p in state.subtitle_files())
    assert srt.read_text(encoding="utf-8").startswith("1\n00:00:00,000 --> ")
    assert "der Mann rennt" in srt.read_text(encoding="utf-8")
    assert vtt.read_text(encoding="utf-8").startswith("WEBVTT")
    assert not list(tmp_path.glob("*.partial"))


def test_text_pipeline_on_the_bundled_model() -> None:
    models = SimpleNamespace(translators=ModelCache())
    cfg = policy_for(PolicyConfig(name="reta", beam=1), "reta", 2)
    assert cfg.mask_k == 2
    state = PageSession(text_pipeline(cfg, models))  # type: ignore[arg-type]
    state.feed("A man is riding a bike.")
    assert len(state.finals) == 1 and state.finals[0].target
    assert state.finals[0].latency_ms > 0


def test_latency_knob_and_menu_note_follow_the_registry() -> None:
    base = PolicyConfig(name="reta")
    assert policy_for(base, "waitk", 4).mask_k == 0 and policy_for(base, "waitk", 4).k == 5
    assert policy_for(base, "fretna", 4).mask_k == 4
    note = revision_note(["reta", "fretna", "waitk", "llm"])
    assert note == "reta/fretna revise their tail; waitk and llm never revise"


def test_the_browser_page_offers_every_registered_policy() -> None:
    import re

    from app.policies import policy_names

    page = (Path(__file__).resolve().parents[2] / "web" / "static" / "index.html").read_text(encoding="utf-8")
    menu = page[page.index('<select id="policy">'): page.index("</select>")]
    assert re.findall(r"<option>([^<]+)</option>", menu) == list(policy_names())
