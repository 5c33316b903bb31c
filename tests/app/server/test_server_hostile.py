"""Hostile input to the server (hypothesis) and the end-to-end check: client over a socket == replay."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("websockets")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from app.cli import main  # noqa: E402
from app.server.server import ServerOptions  # noqa: E402
from app.speech_session import SpeechModels  # noqa: E402
from tests.app.server.test_server import JFK, Running, collect  # noqa: E402


@pytest.fixture(scope="module")
def running(models: SpeechModels, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    run = Running(models, ServerOptions(port=0, max_sessions=4, max_message_bytes=64 * 1024, idle_timeout_s=20,
                                        out_dir=tmp_path_factory.mktemp("sessions")))
    yield run
    run.close()


def healthy(url: str) -> None:
    """A normal text session still works end to end."""
    with connect(url) as ws:
        ws.send(json.dumps({"type": "start", "sample_rate": 16000, "input": "text"}))
        ws.send(json.dumps({"type": "text", "text": "A man walks ."}))
        ws.send(json.dumps({"type": "stop"}))
        msgs = collect(ws)
    assert msgs[-1]["type"] == "summary" and any(m["type"] == "final" for m in msgs)


message = st.one_of(
    st.binary(max_size=4096),
    st.text(max_size=200),
    st.dictionaries(st.text(max_size=12), st.one_of(st.none(), st.integers(), st.text(max_size=20), st.booleans()),
                    max_size=5).map(json.dumps),
    st.sampled_from([json.dumps({"type": "stop"}), json.dumps({"type": "start"}),
                     json.dumps({"type": "start", "sample_rate": 16000, "extra": 1}),
                     json.dumps({"type": "start", "sample_rate": "fast"}),
                     json.dumps({"type": "start", "sample_rate": 16000, "input": "video"}),
                     json.dumps({"type": "text"}), json.dumps([1, 2, 3]), "null"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(message, min_size=1, max_size=8), st.booleans())
def test_random_message_sequences_never_break_the_server(running: Running, msgs: list[Any], started: bool) -> None:
    with connect(running.url) as ws:
        if started:
            ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
        try:
            for m in msgs:
                ws.send(m)
            ws.send(json.dumps({"type": "stop"}))
            for raw in ws:  # every reply is a well-formed message of a known type
                reply = json.loads(raw)
                assert reply["type"] in ("partial", "final", "error", "summary")
                if reply["type"] == "error":
                    assert reply["code"] and reply["message"]
                if reply["type"] == "summary":
                    break
        except ConnectionClosed:
            pass  # the server may close a session it cannot continue (e.g. after a stop before start)
    assert running.server.state.connections <= 1


def test_huge_frames_and_abrupt_disconnects_leave_others_unaffected(running: Running) -> None:
    with connect(running.url) as other:
        other.send(json.dumps({"type": "start", "sample_rate": 16000, "input": "text"}))
        with connect(running.url) as ws:
            ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
            with pytest.raises(ConnectionClosed) as e:
                ws.send(b"\x00" * (256 * 1024))  # over --max-message-bytes
                ws.recv(timeout=10)
            assert e.value.rcvd is None or e.value.rcvd.code == 1009
        for _ in range(3):
            ws2 = connect(running.url)
            ws2.send(json.dumps({"type": "start", "sample_rate": 16000}))
            ws2.send(b"\x01\x02" * 800)
            ws2.socket.close()  # abrupt: no close frame
        other.send(json.dumps({"type": "text", "text": "Two dogs play ."}))
        other.send(json.dumps({"type": "stop"}))
        finals = [m for m in collect(other) if m["type"] == "final"]
        assert finals and finals[0]["source"] == "Two dogs play ."
    healthy(running.url)


def test_client_over_a_socket_matches_replay(running: Running, tiny_export: tuple[Path, Any], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("silero_vad")
    code = main(["client", "--url", running.url, "--file", str(JFK), "--fast", "--json",
                 "--srt", str(tmp_path / "c.srt")])
    out, err = capsys.readouterr()
    assert code == 0, err
    client_finals = [m["target"] for m in map(json.loads, out.splitlines()) if m["type"] == "final"]
    log = tmp_path / "r.jsonl"
    code = main(["replay", str(JFK), "--asr-model", str(tiny_export[0]), "--beam", "1", "--log", str(log), "--json"])
    assert code == 0, capsys.readouterr().err
    replay_finals = [s["prediction"] for s in json.loads(log.read_text().splitlines()[0])["segments"]]
    assert client_finals == replay_finals and client_finals
    assert (tmp_path / "c.srt").read_text().startswith("1\n")
