"""``simulsub serve --ray`` on a one-machine Ray cluster started as docs/protocol.md says (``ray start --head``):
the same captions as the single-process server for the same input; translation replicas killed mid-stream cost
the session nothing; ingress replicas killed mid-stream lose none of the finals they had sent, and the client
resumes its stream; the ingress autoscales with the sessions."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray.serve", reason="Ray Serve is installed by make setup (the [ray] extra)")
pytest.importorskip("onnxruntime")

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from app.server.server import ServerOptions
from app.speech_session import SpeechModels, speech_config
from tests.app.server.test_server import JFK, Running, pcm_frames
from tests.app.test_client_resume import assert_resumed_captions

BIN = Path(sys.executable).parent
SERVE_ARGS = ["--asr-profile", "edge"]  # the bundled small ASR: quick to load in every replica
TEXT = "A man walks down the street . Two dogs play in the snow ."
SESSIONS_PER_REPLICA = 8  # --max-sessions: Serve adds an ingress replica past 0.75 × 8 = 6 sessions per replica


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def replica_pids(deployment: str) -> list[int]:
    """Process ids of the running replicas of ``deployment`` (Ray titles them ``ray::ServeReplica:APP:NAME``)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith(f"ray::ServeReplica:simulsub:{deployment}"):
            pids.append(int(d.name))
    return pids


def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.2)


@dataclass
class RayServer:
    url: str
    sessions: Path


@pytest.fixture(scope="module")
def ray_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayServer]:
    """``ray start --head`` (loopback address, its own temp dir), then ``simulsub serve --ray`` with two ingress
    and two translation replicas, autoscaling up to three; both stopped afterwards (Ctrl-C for the head), every
    wait bounded."""
    temp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    sessions = tmp_path_factory.mktemp("ray_sessions")
    gcs, port = free_port(), free_port()
    head = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                             "--port", str(gcs), "--num-cpus", "4", "--include-dashboard", "false",
                             "--disable-usage-stats", "--temp-dir", str(temp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    serve: subprocess.Popen[str] | None = None
    try:
        wait_for(lambda: _connectable(gcs), 60, "the Ray head")
        serve = subprocess.Popen([str(BIN / "simulsub"), "serve", "--ray", "--ray-address", f"127.0.0.1:{gcs}",
                                  "--port", str(port), "--replicas", "2", "--translation-replicas", "2",
                                  "--max-replicas", "3", "--max-sessions", str(SESSIONS_PER_REPLICA),
                                  "--sessions-dir", str(sessions), *SERVE_ARGS],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        lines: queue.Queue[str] = queue.Queue()
        out = serve.stdout
        assert out is not None
        threading.Thread(target=lambda: [lines.put(ln) for ln in out], daemon=True).start()
        seen = []
        deadline = time.monotonic() + 240
        while True:
            line = lines.get(timeout=max(1.0, deadline - time.monotonic()))
            seen.append(line)
            if "Ray Serve app" in line:
                break
            assert serve.poll() is None, "".join(seen[-20:])
        assert f"ws://127.0.0.1:{port}" in line
        yield RayServer(f"ws://127.0.0.1:{port}", sessions)
    finally:
        for proc, sig in ((serve, signal.SIGTERM), (head, signal.SIGINT)):  # 'ray start --block' stops on SIGINT
            if proc is None:
                continue
            proc.send_signal(sig)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if serve is not None and serve.stdout is not None:
            serve.stdout.close()
        shutil.rmtree(temp, ignore_errors=True)


def _connectable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def audio_session(url: str, *, midway: Any = None) -> list[dict[str, Any]]:
    """The JFK clip as one audio session; ``midway()`` runs after half the frames once a caption has come back.
    Returns every message up to the summary."""
    frames = pcm_frames()
    half = len(frames) // 2
    msgs: list[dict[str, Any]] = []
    with connect(url, open_timeout=60) as ws:
        ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
        for f in frames[:half]:
            ws.send(f)
        if midway is not None:
            msgs.append(json.loads(ws.recv(timeout=60)))  # a caption: the session's models have run
            midway()
        for f in frames[half:]:
            ws.send(f)
        ws.send(json.dumps({"type": "stop"}))
        while not msgs or msgs[-1]["type"] != "summary":
            msgs.append(json.loads(ws.recv(timeout=180)))
    return msgs


def text_session(url: str) -> list[dict[str, Any]]:
    with connect(url, open_timeout=60) as ws:
        ws.send(json.dumps({"type": "start", "sample_rate": 16000, "input": "text"}))
        ws.send(json.dumps({"type": "text", "text": TEXT}))
        ws.send(json.dumps({"type": "stop"}))
        msgs = []
        while not msgs or msgs[-1]["type"] != "summary":
            msgs.append(json.loads(ws.recv(timeout=60)))
    return msgs


def finals(msgs: list[dict[str, Any]], *, times: bool = True) -> list[tuple[Any, ...]]:
    """What a final says: its texts and (``times``; audio only: text sessions are timed by the wall clock) its
    stream times."""
    assert not [m for m in msgs if m["type"] == "error"], msgs
    return [(m["segment"], m["source"], m["target"], *((m["start_ms"], m["end_ms"]) if times else ()))
            for m in msgs if m["type"] == "final"]


@pytest.fixture(scope="module")
def single_process() -> Iterator[Running]:
    """The plain ``simulsub serve`` with the same options, in this process."""
    from app.cli import build_parser

    cfg = speech_config(build_parser().parse_args(["serve", *SERVE_ARGS]))
    server = Running(SpeechModels(cfg), ServerOptions(port=0, max_sessions=2, out_dir=None))
    yield server
    server.close()


def test_ray_serve_gives_the_captions_of_the_single_process_server(ray_server: RayServer,
                                                                   single_process: Running) -> None:
    expected_audio = finals(audio_session(single_process.url))
    expected_text = finals(text_session(single_process.url), times=False)
    assert expected_audio and len(expected_text) == 2
    assert finals(audio_session(ray_server.url)) == expected_audio
    assert finals(text_session(ray_server.url), times=False) == expected_text
    with pytest.raises(InvalidStatus, match="403"):  # the handshake checks of the single process hold too
        connect(ray_server.url, additional_headers={"Origin": "https://evil.example"}, open_timeout=30)


def test_killed_translation_replicas_cost_a_session_nothing(ray_server: RayServer, single_process: Running) -> None:
    """Every translation replica SIGKILLed mid-stream: the session waits for Serve's replacements and ends with
    exactly the finals of an undisturbed run, and no error event."""
    expected = finals(audio_session(single_process.url))
    killed: list[int] = []

    def kill_translation() -> None:
        pids = replica_pids("TranslationStage")
        assert len(pids) == 2
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        killed.extend(pids)

    got = audio_session(ray_server.url, midway=kill_translation)
    assert killed and finals(got) == expected
    assert got[-1]["type"] == "summary"
    wait_for(lambda: len(set(replica_pids("TranslationStage")) - set(killed)) == 2, 120, "two new replicas")


def test_a_killed_ingress_replica_loses_no_final_and_the_client_resumes(ray_server: RayServer,
                                                                         single_process: Running) -> None:
    """``simulsub client`` streams the clip in real time; after its first final both ingress replicas are
    SIGKILLed. The finals it had received are in the session's persisted JSONL; it resumes on a new session once
    Serve has replaced the replicas and captions the rest of the clip."""
    before = set(replica_pids("CaptionIngress"))
    assert len(before) == 2
    client = subprocess.Popen([str(BIN / "simulsub"), "client", "--url", ray_server.url, "--file", str(JFK),
                               "--json", "--reconnect", "10"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    out = client.stdout
    assert out is not None
    received = []
    try:
        while not [m for m in received if m["type"] == "final"]:
            line = out.readline()
            assert line, client.stderr.read() if client.stderr else "the client ended"
            received.append(json.loads(line))
        for pid in before:
            os.kill(pid, signal.SIGKILL)
        rest, err = client.communicate(timeout=240)
    finally:
        if client.poll() is None:
            client.kill()
    msgs = received + [json.loads(ln) for ln in rest.splitlines() if ln.startswith("{")]
    assert client.returncode == 0, err
    assert "resuming on a new session" in err
    assert msgs[-1]["type"] == "summary" and msgs[-1]["resumed"] >= 1
    assert_resumed_captions([m for m in msgs if m["type"] == "final"],
                            [m for m in audio_session(single_process.url) if m["type"] == "final"])
    sent = [m for m in received if m["type"] == "final"]
    persisted = [json.loads(ln) for f in ray_server.sessions.glob("*.jsonl") for ln in f.read_text().splitlines()]
    for m in sent:  # the finals sent before the kill are on disk
        assert m in persisted
    assert len(set(replica_pids("CaptionIngress")) - before) == 2  # Serve replaced both


def test_ingress_replicas_autoscale_with_the_sessions(ray_server: RayServer) -> None:
    """Thirteen open sessions on two ingress replicas of 8 sessions (target 6 each): Serve adds the third replica
    --max-replicas allows, and every session is served (one refused by a full replica is opened again, as a client
    would)."""
    wait_for(lambda: len(replica_pids("CaptionIngress")) == 2, 120, "two ingress replicas")

    def open_session(stack: contextlib.ExitStack) -> None:
        for _ in range(5):
            ws = stack.enter_context(connect(ray_server.url, open_timeout=60))
            try:
                ws.send(json.dumps({"type": "start", "sample_rate": 16000, "input": "text"}))
                ws.send(json.dumps({"type": "text", "text": "A man"}))
                msg = json.loads(ws.recv(timeout=60))
            except ConnectionClosed as e:  # a full replica may close before the client's messages are sent
                assert e.rcvd is not None and "too_many_sessions" in e.rcvd.reason, e
                continue
            if msg["type"] in ("partial", "final"):
                return
            assert msg.get("code") == "too_many_sessions", msg
        raise AssertionError("a session was refused five times")

    with contextlib.ExitStack() as stack:
        for _ in range(13):
            open_session(stack)
        wait_for(lambda: len(replica_pids("CaptionIngress")) == 3, 120, "a third ingress replica")
