"""``simulsub client`` resumes a stream on a new session when its connection is cut: the bookkeeping of
:mod:`app.stream_resume`, and a real client through a proxy that resets the connection after the first final."""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import struct
import threading
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.stream_resume import MAX_PENDING_MS, StreamResume, resumable


def samples(ms: float, value: float = 0.1) -> np.ndarray:
    return np.full(int(ms * 16), value, dtype=np.float32)


def test_a_final_releases_the_audio_it_covers() -> None:
    r = StreamResume()
    r.sent(samples(1000, 0.1))
    r.sent(samples(1000, 0.2))
    assert r.pending_ms == pytest.approx(2000)
    assert r.received({"type": "final", "segment": 0, "start_ms": 100.0, "end_ms": 1500.0})["end_ms"] == 1500.0
    assert r.pending_ms == pytest.approx(500)
    replay = r.resume()
    assert replay.size == 500 * 16 and np.all(replay == np.float32(0.2))  # the audio after the final, in order


def test_a_resumed_session_continues_the_clients_times_segments_and_summary() -> None:
    r = StreamResume()
    r.sent(samples(3000))
    r.received({"type": "final", "segment": 0, "start_ms": 0.0, "end_ms": 1000.0})
    r.received({"type": "final", "segment": 1, "start_ms": 1200.0, "end_ms": 2000.0})
    r.received({"type": "partial", "segment": 2, "start_ms": 2100.0, "end_ms": 2900.0})
    assert r.resume().size == 1000 * 16  # 2000..3000 ms is sent again
    r.sent(samples(1000))
    partial = r.received({"type": "partial", "segment": 0, "start_ms": 100.0, "end_ms": 900.0, "target": "x"})
    assert (partial["segment"], partial["start_ms"], partial["end_ms"]) == (2, 2100.0, 2900.0)
    final = r.received({"type": "final", "segment": 0, "start_ms": 100.0, "end_ms": 950.0})
    assert (final["segment"], final["end_ms"]) == (2, 2950.0)
    summary = r.received({"type": "summary", "segments": 1, "audio_s": 1.0})
    assert summary == {"type": "summary", "segments": 3, "audio_s": 3.0, "resumed": 1}
    r.resume()  # a second cut: offsets add up
    assert (r.offset_ms, r.segment_offset, r.finals) == (pytest.approx(2950.0), 3, 3)


def test_pending_audio_is_bounded() -> None:
    r = StreamResume()
    for _ in range(int(MAX_PENDING_MS / 1000) + 30):  # silence: no final for minutes
        r.sent(samples(1000))
    assert r.pending_ms == pytest.approx(MAX_PENDING_MS)


def test_only_cuts_and_server_failures_are_resumed() -> None:
    assert resumable(None) and resumable(1006) and resumable(1011) and resumable(1001) and resumable(1013)
    assert not resumable(1000) and not resumable(1008) and not resumable(1009)
    assert not resumable(1011, "session_too_long") and not resumable(1008, "too_many_errors")


# -- a real client, a real server, a connection reset mid-stream -----------------------------------------------
pytest.importorskip("websockets")
pytest.importorskip("onnxruntime")

from tests.app.server.test_server import JFK, Running  # noqa: E402


class ServerFrames:
    """Reads the server's side of a WebSocket connection (after the HTTP handshake): unmasked frames, text
    messages inflated when permessage-deflate compressed them (RSV1)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.handshake_done = False
        self.inflater = zlib.decompressobj(-15)

    def final_in(self, data: bytes) -> bool:
        """Whether ``data`` completes a ``final`` message."""
        self.buffer += data
        if not self.handshake_done:
            _, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return False
            self.handshake_done, self.buffer = True, rest
        found = False
        while len(self.buffer) >= 2:
            b0, b1 = self.buffer[0], self.buffer[1]
            n, at = b1 & 0x7F, 2
            if n == 126:
                if len(self.buffer) < 4:
                    break
                n, at = int.from_bytes(self.buffer[2:4], "big"), 4
            elif n == 127:
                if len(self.buffer) < 10:
                    break
                n, at = int.from_bytes(self.buffer[2:10], "big"), 10
            if len(self.buffer) < at + n:
                break
            payload, self.buffer = self.buffer[at : at + n], self.buffer[at + n :]
            if b0 & 0x0F == 1:  # a text message in one frame (the server never fragments captions)
                text = self.inflater.decompress(payload + b"\x00\x00\xff\xff") if b0 & 0x40 else payload
                found = found or b'"type": "final"' in text
        return found


class CuttingProxy:
    """TCP proxy to ``port``; its first connection is reset (RST both ways) once the server has sent a final."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.cut = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            server = socket.create_connection(("127.0.0.1", self.target))
            cut = threading.Event() if self.connections == 1 else None
            threading.Thread(target=self._pump, args=(client, server, cut, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, cut, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, cut: threading.Event | None, from_server: bool) -> None:
        """Copy ``src`` to ``dst``; on a connection to be cut, the server's side watches for a final, and then both
        sides reset their own socket (SO_LINGER 0: RST, no close frame), as a dying server process does."""
        frames = ServerFrames()
        src.settimeout(0.05)
        try:
            while cut is None or not cut.is_set():
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                if cut is not None and from_server and frames.final_in(data):
                    cut.set()
                    self.cut.set()
                    break
                dst.sendall(data)
        except OSError:
            pass
        if cut is not None and cut.is_set():
            src.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            src.close()
            return
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def assert_resumed_captions(finals: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Captions of a stream resumed once: the first ones are those of the undisturbed stream, none is repeated
    and the resumed session goes on to the end of the audio (its own segmentation: the VAD starts afresh)."""
    same = 0
    while same < min(len(finals), len(expected)) and finals[same]["target"] == expected[same]["target"]:
        same += 1
    assert same >= 1
    assert len({m["target"] for m in finals[same:]} & {m["target"] for m in finals[:same]}) == 0
    assert finals[-1]["end_ms"] == pytest.approx(expected[-1]["end_ms"], abs=500.0)


def run_client(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, Any, str]:
    from app.cli import main

    code = main(["client", "--url", url, "--file", str(JFK), "--fast", "--json", *extra])
    out, err = capsys.readouterr()
    return code, [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")], err


def test_client_resumes_a_cut_stream_on_a_new_session(models: Any, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from app.server.server import ServerOptions

    running = Running(models, ServerOptions(port=0, max_sessions=2, out_dir=tmp_path / "sessions"))
    proxy = CuttingProxy(running.server.port)
    try:
        code, undisturbed, _ = run_client(running.url, tmp_path, capsys)
        assert code == 0
        srt = tmp_path / "out.srt"
        code, msgs, err = run_client(f"ws://127.0.0.1:{proxy.port}", tmp_path, capsys, "--srt", str(srt))
    finally:
        proxy.close()
        running.close()
    assert code == 0 and proxy.cut.is_set() and proxy.connections == 2
    assert "resuming on a new session" in err
    summary = msgs[-1]
    assert summary["type"] == "summary" and summary["resumed"] == 1
    finals = [m for m in msgs if m["type"] == "final"]
    expected = [m for m in undisturbed if m["type"] == "final"]
    assert len(finals) >= 2 and summary["segments"] == len(finals)
    assert [m["segment"] for m in finals] == list(range(len(finals)))  # none twice, none missing
    for a, b in itertools.pairwise(finals):
        assert b["start_ms"] >= a["end_ms"] - 1.0  # the client's one timeline
    assert summary["audio_s"] == pytest.approx(undisturbed[-1]["audio_s"], abs=0.05)
    # before the cut: the undisturbed captions; after it, the resumed session (VAD and ASR afresh from the end of
    # the last final) captions the rest of the clip, to its end
    assert_resumed_captions(finals, expected)
    assert srt.read_text(encoding="utf-8").count("-->") >= len(finals)


def test_client_without_reconnect_reports_the_cut(models: Any, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from app.server.server import ServerOptions

    running = Running(models, ServerOptions(port=0, max_sessions=2, out_dir=None))
    proxy = CuttingProxy(running.server.port)
    try:
        code, msgs, err = run_client(f"ws://127.0.0.1:{proxy.port}", tmp_path, capsys, "--reconnect", "0")
    finally:
        proxy.close()
        running.close()
    assert code == 2 and "no close frame" in err
    assert [m for m in msgs if m["type"] == "partial"]  # what came before the cut was shown
