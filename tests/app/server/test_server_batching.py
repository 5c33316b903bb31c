"""Cross-session batching in the server: concurrent sessions share translation batches and get exactly the
captions a server without batching sends; ``serve --procs`` splits the session limit."""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("websockets")
pytest.importorskip("onnxruntime")

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.batching import BatchingOptions
from app.server.processes import ProcessPlan, child_args
from app.server.server import ServerOptions
from app.speech_session import SpeechModels
from tests.app.server.test_server import Running, collect, pcm_frames


def stream(url: str) -> list[tuple[str, str]]:
    """One JFK stream: the (type, target) of every caption event, in order."""
    with connect(url) as ws:
        ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
        for frame in pcm_frames():
            ws.send(frame)
        ws.send(json.dumps({"type": "stop"}))
        msgs = collect(ws)
    assert msgs[-1]["type"] == "summary" and not [m for m in msgs if m["type"] == "error"]
    return [(m["type"], m["target"]) for m in msgs if m["type"] in ("partial", "final")]


def finals(events: list[tuple[str, str]]) -> list[str]:
    return [t for kind, t in events if kind == "final"]


def test_batched_sessions_get_the_captions_of_an_unbatched_server(models: SpeechModels, tmp_path: Path) -> None:
    alone = Running(models, ServerOptions(port=0, max_sessions=1, out_dir=None))
    try:
        expected = stream(alone.url)
    finally:
        alone.close()
    batched_models = SpeechModels(models.cfg, batching=BatchingOptions(window_ms=5))
    options = ServerOptions(port=0, max_sessions=3, out_dir=tmp_path, batching=batched_models.batching)
    assert options.session_threads == 3  # at most one thread per session
    batched = Running(batched_models, options)
    try:
        with ThreadPoolExecutor(3) as pool:
            together: list[Any] = list(pool.map(stream, [batched.url] * 3))
    finally:
        batched.close()
        batched_models.close()
    assert finals(expected)
    for events in together:
        # partials are coalesced by the outbox when a client lags, so only the finals must match one for one
        assert finals(events) == finals(expected)
        assert {t for kind, t in events if kind == "partial"} <= {t for kind, t in expected if kind == "partial"}
    stats = batched_models.batch_stats()["translation"]
    assert stats["requests"] > 0  # type: ignore[operator]


def test_unbatched_server_keeps_its_model_threads() -> None:
    assert ServerOptions(port=0, workers=2, max_sessions=40).session_threads == 2
    assert ServerOptions(port=0, workers=2, max_sessions=40, batching=BatchingOptions()).session_threads == 8
    assert ServerOptions(port=0, workers=2, max_sessions=3, batching=BatchingOptions()).session_threads == 3


def test_processes_split_the_session_limit() -> None:
    plan = ProcessPlan(procs=3, max_sessions=64)
    assert plan.sessions_per_child == 22
    assert ProcessPlan(procs=4, max_sessions=2).sessions_per_child == 1
    args = argparse.Namespace(procs=3, max_sessions=64, port=8765, policy="reta")
    child = child_args(args, plan, port=40001)
    assert (child.procs, child.max_sessions, child.handoff, child.port) == (1, 22, None, 40001)
    assert args.procs == 3 and args.port == 8765 and not hasattr(args, "handoff")  # the parent's are left alone


def test_procs_needs_a_sane_count_and_a_free_port() -> None:
    import socket

    from app.cli import main

    assert main(["serve", "--procs", "0"]) == 2
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        assert main(["serve", "--procs", "2", "--port", str(taken.getsockname()[1])]) == 2  # before any child


def test_serve_procs_runs_supervised_servers_on_one_port(tmp_path: Path) -> None:
    """``serve --procs 2``: two listening children answer sessions on one port; a killed child is started
    again; SIGTERM to the parent stops them all and it exits 0. Every wait is bounded."""
    import os
    import queue
    import signal
    import socket
    import subprocess
    import sys
    import threading

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("simulsub")
    proc = subprocess.Popen([str(exe), "serve", "--procs", "2", "--port", str(port), "--max-sessions", "4",
                             "--sessions-dir", str(tmp_path), "--asr-profile", "edge"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout], daemon=True).start()  # type: ignore[union-attr]

    def next_child(timeout_s: float = 120.0) -> int:
        """The pid of the next child that reports listening."""
        while True:
            line = lines.get(timeout=timeout_s)
            if "listening on" in line:
                return int(line.split("process ")[1].split()[0])

    def translate() -> list[str]:
        """One text session; a connection the kernel handed to a process that just died is retried, as a client
        would (docs/protocol.md)."""
        for attempt in range(3):
            try:
                return session()
            except (OSError, ConnectionClosed):
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def session() -> list[str]:
        with connect(f"ws://127.0.0.1:{port}", open_timeout=30) as ws:
            ws.send(json.dumps({"type": "start", "sample_rate": 16000, "input": "text"}))
            ws.send(json.dumps({"type": "text", "text": "A man walks down the street ."}))
            ws.send(json.dumps({"type": "stop"}))
            out = []
            while True:
                msg = json.loads(ws.recv(timeout=60))
                if msg["type"] == "final":
                    out.append(msg["target"])
                if msg["type"] == "summary":
                    return out

    try:
        children = [next_child(), next_child()]
        assert len(set(children)) == 2
        first = translate()
        assert first and "Mann" in first[0]
        os.kill(children[0], signal.SIGKILL)  # a crashed child: the parent starts another
        restarted = next_child()
        assert restarted not in children
        assert [translate() for _ in range(3)] == [first] * 3  # both processes give the same captions
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        for pid in (children[1], restarted):
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(["pkill", "-KILL", "-f", f"--port {port}"], check=False)


def test_serve_procs_children_stop_when_the_parent_is_killed(tmp_path: Path) -> None:
    """A parent killed outright (no SIGTERM to pass on) leaves no orphans: each child sees its hand-off channel
    end, closes its server and exits."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("simulsub")
    proc = subprocess.Popen([str(exe), "serve", "--procs", "2", "--port", str(port), "--sessions-dir",
                             str(tmp_path), "--asr-profile", "edge"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        children: list[int] = []
        deadline = time.monotonic() + 120
        while len(children) < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if "listening on" in line:
                children.append(int(line.split("process ")[1].split()[0]))
        assert len(children) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 30
        alive = set(children)
        while alive and time.monotonic() < deadline:
            for pid in list(alive):
                try:
                    os.kill(pid, 0)
                    with open(f"/proc/{pid}/stat") as f:
                        if f.read().split()[2] == "Z":  # exited, not yet reaped by init
                            alive.discard(pid)
                except (ProcessLookupError, FileNotFoundError):
                    alive.discard(pid)
            time.sleep(0.2)
        assert not alive, f"children still running after their parent was killed: {alive}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(["pkill", "-KILL", "-f", f"--port {port}"], check=False)
