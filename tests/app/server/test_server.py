"""The WebSocket server: audio and text sessions, errors, limits, token, origin, persistence on disconnect."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("websockets")
pytest.importorskip("onnxruntime")

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from app.errors import UserError
from app.server.outbox import Outbox
from app.server.server import CaptionServer, ServerOptions
from app.speech_session import SpeechModels

JFK = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "speech" / "jfk" / "jfk.16k.wav"


class Running:
    """A CaptionServer on an ephemeral port, its event loop in a thread."""

    def __init__(self, models: SpeechModels, options: ServerOptions) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = CaptionServer(models, options)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(timeout=30)
        self.url = f"ws://127.0.0.1:{self.server.port}"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.aclose(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture()
def server(models: SpeechModels, tmp_path: Path) -> Iterator[Running]:
    run = Running(models, ServerOptions(port=0, max_sessions=2, out_dir=tmp_path / "sessions", idle_timeout_s=20))
    yield run
    run.close()


def pcm_frames(seconds: float | None = None) -> list[bytes]:
    audio, _ = sf.read(JFK, dtype="float32")
    if seconds is not None:
        audio = audio[: int(seconds * 16000)]
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    return [pcm[i : i + 3201] for i in range(0, len(pcm), 3201)]  # odd sizes: samples split across frames


def collect(ws: Any) -> list[dict[str, Any]]:
    out = []
    for raw in ws:
        msg = json.loads(raw)
        out.append(msg)
        if msg["type"] == "summary":
            break
    return out


def test_audio_session_streams_captions_and_persists_finals(server: Running, tmp_path: Path) -> None:
    with connect(server.url) as ws:
        ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
        for frame in pcm_frames():
            ws.send(frame)
        ws.send(json.dumps({"type": "stop"}))
        msgs = collect(ws)
    kinds = [m["type"] for m in msgs]
    assert kinds[-1] == "summary" and "final" in kinds and "error" not in kinds
    finals = [m for m in msgs if m["type"] == "final"]
    for m in finals:
        assert {"segment", "revision", "stable", "source", "target", "start_ms", "end_ms", "latency_ms"} <= m.keys()
        assert m["stable"] == len(m["target"].split())
    summary = msgs[-1]
    assert summary["segments"] == len(finals) and summary["audio_s"] == pytest.approx(11.0, abs=0.1)
    saved = tmp_path / "sessions" / f"{summary['session']}.jsonl"
    assert [json.loads(x)["target"] for x in saved.read_text().splitlines()] == [m["target"] for m in finals]
    assert saved.with_suffix(".srt").read_text().startswith("1\n")


def test_resampled_input_and_text_input(server: Running) -> None:
    audio, _ = sf.read(JFK, dtype="float32")
    import soxr

    pcm8 = (soxr.resample(audio, 16000, 8000) * 32767).astype("<i2").tobytes()
    with connect(server.url) as ws:
        ws.send(json.dumps({"type": "start", "sample_rate": 8000}))
        for i in range(0, len(pcm8), 1600):
            ws.send(pcm8[i : i + 1600])
        ws.send(json.dumps({"type": "stop"}))
        msgs = collect(ws)
    assert msgs[-1]["audio_s"] == pytest.approx(11.0, abs=0.1)
    with connect(server.url) as ws:
        ws.send(json.dumps({"type": "start", "sample_rate": 16000, "input": "text", "policy": "reta"}))
        words = "A man walks down the street . Two dogs play"
        for word in words.split():
            ws.send(json.dumps({"type": "text", "text": word}))
        ws.send(json.dumps({"type": "stop"}))
        msgs = collect(ws)
    finals = [m for m in msgs if m["type"] == "final"]
    assert [m["source"] for m in finals] == ["A man walks down the street .", "Two dogs play"]
    assert any(m["type"] == "partial" for m in msgs) and "Mann" in finals[0]["target"]


def test_bad_messages_get_error_codes(server: Running) -> None:
    with connect(server.url) as ws:
        ws.send("not json")
        assert json.loads(ws.recv())["code"] == "bad_json"
        ws.send(b"\x00\x01")
        assert json.loads(ws.recv())["code"] == "expected_start"
        ws.send(json.dumps({"type": "start", "sample_rate": 16000, "policy": "nope"}))
        assert json.loads(ws.recv())["code"] == "bad_start"
        ws.send(json.dumps({"type": "start", "sample_rate": 16000, "target_lang": "ja"}))
        assert json.loads(ws.recv())["code"] == "unsupported_language"
        ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
        ws.send(json.dumps({"type": "text", "text": "hello"}))
        assert json.loads(ws.recv())["code"] == "wrong_input"
        ws.send(json.dumps({"type": "dance"}))
        assert json.loads(ws.recv())["code"] == "bad_message"
        ws.send(json.dumps({"type": "stop"}))
        assert collect(ws)[-1]["type"] == "summary"


@pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager")
def test_session_limit_and_abrupt_disconnect(server: Running, tmp_path: Path) -> None:
    first = connect(server.url)  # closed abruptly below, on purpose
    first.send(json.dumps({"type": "start", "sample_rate": 16000}))
    second = connect(server.url)
    second.send(json.dumps({"type": "start", "sample_rate": 16000}))
    deadline = time.time() + 30
    while server.server.state.active < 2 and time.time() < deadline:
        time.sleep(0.05)
    with connect(server.url) as third:  # a connection is accepted; its start is refused while both slots are held
        third.send(json.dumps({"type": "start", "sample_rate": 16000}))
        msg = json.loads(third.recv())
        with pytest.raises(ConnectionClosed) as closed:
            third.recv(timeout=10)
    assert msg["type"] == "error" and msg["code"] == "too_many_sessions"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert json.loads(closed.value.rcvd.reason)["code"] == "too_many_sessions"
    for frame in pcm_frames(6.0):
        first.send(frame)
    first.close()  # no stop: the server must still finalise and persist what it heard
    second.send(json.dumps({"type": "stop"}))
    collect(second)
    second.close()
    deadline = time.time() + 30
    saved: list[Path] = []
    while time.time() < deadline:
        saved = [p for p in (tmp_path / "sessions").glob("*.jsonl") if p.read_text().strip()]
        if saved:
            break
        time.sleep(0.2)
    assert saved, "the disconnected session's finals were not persisted"


def test_token_origin_and_public_bind(models: SpeechModels, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--token"):
        ServerOptions(host="0.0.0.0", token=None)
    run = Running(models, ServerOptions(port=0, token="s3cret", out_dir=None))
    try:
        with pytest.raises(InvalidStatus) as e:
            connect(run.url)
        assert e.value.response.status_code == 401
        with pytest.raises(InvalidStatus) as e:  # a token in the URL would leak into logs: refused
            connect(f"{run.url}?token=s3cret")
        assert e.value.response.status_code == 401 and b"URL" in e.value.response.body
        with connect(run.url, additional_headers={"Authorization": "bearer s3cret"}) as ws:  # scheme: any case
            ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
            ws.send(json.dumps({"type": "stop"}))
            assert collect(ws)[-1]["type"] == "summary"
        browser = "simulsub.token." + base64.urlsafe_b64encode(b"s3cret").decode().rstrip("=")
        with connect(run.url, subprotocols=["simulsub", browser]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "simulsub"  # the token itself is never echoed back
            ws.send(json.dumps({"type": "stop"}))
        with pytest.raises(InvalidStatus):
            connect(run.url, subprotocols=["simulsub", browser + "x"])  # type: ignore[list-item]
        with connect(run.url, additional_headers={"Authorization": "Bearer s3cret"},
                     origin="http://localhost") as ws:  # type: ignore[arg-type]
            ws.send(json.dumps({"type": "stop"}))
        with pytest.raises(InvalidStatus) as e:
            connect(run.url, additional_headers={"Authorization": "Bearer s3cret"},
                    origin="http://evil.example")  # type: ignore[arg-type]
        assert e.value.response.status_code == 403
    finally:
        run.close()


def test_outbox_coalesces_partials_and_keeps_finals() -> None:
    async def scenario() -> list[dict[str, Any]]:
        box = Outbox(max_partials=2)
        for i in range(5):
            box.put({"type": "partial", "segment": 0, "revision": i})
        box.put({"type": "final", "segment": 0, "revision": 5})
        for i in range(4):
            box.put({"type": "partial", "segment": 1 + i, "revision": i})
        box.put({"type": "summary"})
        box.close()
        out = []
        while (m := await box.get()) is not None:
            out.append(m)
        return out

    out = asyncio.run(scenario())
    assert [m["type"] for m in out].count("final") == 1 and out[-1]["type"] == "summary"
    partials = [m for m in out if m["type"] == "partial"]
    assert [m["segment"] for m in partials] == [3, 4]  # the oldest partials went first; the final stayed
    assert out[0] == {"type": "final", "segment": 0, "revision": 5}


def test_the_server_serves_the_caption_pages(server: Running) -> None:
    import urllib.error
    import urllib.request

    base = server.url.replace("ws://", "http://")
    for path, kind, needle in (("/", "text/html", "SimulsubClient"), ("/overlay.html", "text/html", "OBS"),
                               ("/simulsub.js", "javascript", "getUserMedia"),
                               ("/pcm-worklet.js", "javascript", "registerProcessor")):
        with urllib.request.urlopen(base + path, timeout=10) as r:
            assert r.status == 200 and kind in r.headers["Content-Type"]
            assert needle in r.read().decode()
    for bad in ("/nope.html", "/../../pyproject.toml", "/%2e%2e/%2e%2e/Makefile"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + bad, timeout=10)
        assert e.value.code == 404
        e.value.close()  # an unread error response keeps its connection open until the server times it out
