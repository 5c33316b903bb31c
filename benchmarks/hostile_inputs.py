"""Generated hostile input for the caption server, and the check of what it answers (tests and benchmark).

An :class:`Attack` is one WebSocket connection: an optional valid ``start``, then a sequence of hostile frames
(random bytes, deep nesting, huge or wrong-typed JSON, lone surrogates, order violations, floods, oversized
frames), then ``stop``. :func:`run_attack` plays it against a server and :func:`problems` lists everything the
server did wrong: a reply that is not a well-formed message of the protocol, an error without a known code, or
a close by the server without a JSON reason. :func:`http_cases` are raw HTTP requests for the static-page side;
:func:`run_http` sends one and returns the status (the server must answer 4xx, or close, never 500).
:class:`RawClient` speaks WebSocket over a bare socket: it never answers pings and can reset the connection.
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

from app.server.protocol import ERROR_CODES

REPLY_TYPES = ("partial", "final", "error", "summary")
FAMILIES = ("random_bytes", "random_text", "nested", "huge_json", "wrong_types", "surrogates", "order", "flood",
            "oversized", "numbers")


@dataclass(frozen=True)
class Attack:
    """One connection's worth of hostile frames (``start``: a valid start sent first, or None)."""

    family: str
    frames: tuple[str | bytes, ...]
    start: dict[str, Any] | None = None

    @property
    def inputs(self) -> int:
        """Hostile client messages in this attack (frames; an HTTP request counts one)."""
        return len(self.frames)


@dataclass
class Outcome:
    """What the server sent back: replies (decoded when JSON), and the close the server initiated (if any)."""

    replies: list[Any] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    summary: bool = False
    refused: str = ""  # handshake refused (HTTP status line)


def _start(rng: random.Random, text: bool) -> dict[str, Any]:
    return {"type": "start", "sample_rate": rng.choice([8000, 16000, 44100]), **({"input": "text"} if text else {})}


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return rng.choice([None, True, False, 0, -1, 2**63, 1e308, -0.0])
    if kind == 1:
        return rng.randint(-(2**40), 2**40)
    if kind == 2:
        return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(12)))
    if kind == 3:
        return rng.choice(["start", "text", "stop", "", "en", "de", "reta", "audio"])
    if kind == 4:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["type", "sample_rate", "input", "policy", "text", "source_lang", "target_lang", "k", "beam", "x"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(5))}


def _wrong_typed(rng: random.Random) -> str:
    bad = [["en"], {"en": "de"}, 16000.5, "16000", None, True, -5, 10**30, "", [], {}, "\u202e", "x" * 5000]
    field_name = rng.choice(["sample_rate", "input", "policy", "source_lang", "target_lang", "mask_k", "k", "beam",
                             "latency", "type"])
    msg: dict[str, Any] = {"type": "start", "sample_rate": 16000}
    msg[field_name] = rng.choice(bad)
    return json.dumps(msg)


def _surrogate(rng: random.Random) -> str:
    lone = rng.choice(["\\ud800", "\\udfff", "\\udc80", "\\ud83d"])
    return rng.choice([
        f'{{"type": "start", "sample_rate": 16000, "{lone}": 1}}',
        f'{{"type": "start", "sample_rate": 16000, "source_lang": "{lone}"}}',
        f'{{"type": "start", "sample_rate": 16000, "target_lang": "de{lone}"}}',
        f'{{"type": "start", "sample_rate": 16000, "policy": "{lone}"}}',
        f'{{"type": "text", "text": "A man {lone} walks ."}}',
        f'{{"type": "{lone}"}}',
        f'{{"{lone}": "{lone}"}}',
    ])


def _nested(rng: random.Random) -> str:
    depth = rng.choice([5, 50, 1000, 10_000, 50_000])
    kind = rng.randrange(4)
    if kind == 0:
        return "[" * depth + "]" * depth
    if kind == 1:
        return '{"a":' * depth + "1" + "}" * depth
    if kind == 2:
        return '{"type": "start", "sample_rate": 16000, "policy": ' + "[" * depth + "]" * depth + "}"
    return "[" * depth  # unterminated


def generate(n: int, *, seed: int = 0, max_message_bytes: int = 64 * 1024) -> list[Attack]:
    """``n`` attacks cycling through :data:`FAMILIES` (deterministic for a seed)."""
    rng = random.Random(seed)
    attacks: list[Attack] = []
    for i in range(n):
        family = FAMILIES[i % len(FAMILIES)]
        text_session = rng.random() < 0.5
        start: dict[str, Any] | None = _start(rng, text_session) if rng.random() < 0.6 else None
        count = rng.randrange(2, 9)
        frames: list[str | bytes]
        if family == "random_bytes":
            frames = [rng.randbytes(rng.randrange(0, 4096)) for _ in range(count)]
        elif family == "random_text":
            frames = ["".join(chr(rng.randrange(0, 0xD7FF)) for _ in range(rng.randrange(0, 300)))
                      for _ in range(count)]
        elif family == "nested":
            frames = [_nested(rng) for _ in range(count)]
        elif family == "huge_json":
            size = rng.choice([max_message_bytes // 2, max_message_bytes - 200])
            frames = [rng.choice([json.dumps({"type": "text", "text": "word " * (size // 5 - 8)}),
                                  json.dumps({"type": "start", "sample_rate": 16000, "x": [0] * (size // 3 - 20)}),
                                  json.dumps({"type": "text", "text": "a" * (size - 40)})]) for _ in range(count)]
        elif family == "wrong_types":
            frames = [*(_wrong_typed(rng) for _ in range(count)),
                      *(json.dumps(_random_json(rng)) for _ in range(count))]
        elif family == "surrogates":
            frames = [_surrogate(rng) for _ in range(count)]
        elif family == "order":
            pool: list[str | bytes] = [json.dumps({"type": "text", "text": "Early words ."}),
                                       json.dumps(_start(rng, False)), json.dumps(_start(rng, True)),
                                       b"\x00\x01" * 800, json.dumps({"type": "stop"}),
                                       json.dumps({"type": "text", "text": "After stop ."}), b"\x7f" * 31,
                                       json.dumps({"type": "summary"}), "null", "[]", "{}"]
            frames = rng.sample(pool, k=min(count + 2, len(pool)))
        elif family == "flood":
            tiny: list[str | bytes] = [b"", b"\x01", rng.randbytes(rng.randrange(1, 64)),
                                       json.dumps({"type": "text", "text": "x"}), "{}"]
            frames = [rng.choice(tiny) for _ in range(count * 25)]
        elif family == "oversized":
            big: list[str | bytes] = [b"\x00" * (max_message_bytes + 1), "x" * (max_message_bytes + 10)]
            frames = [rng.choice(big)]
        else:  # numbers
            frames = [rng.choice(['{"type": "start", "sample_rate": NaN}', '{"type": "start", "sample_rate": 1e999}',
                                  '{"type": "start", "sample_rate": -Infinity}', '{"type": "start", "k": 1e400}',
                                  '{"type": "start", "sample_rate": 16000, "beam": 99999999999999999999999}',
                                  '{"type": "text", "text": 1e999}', '{"type": "start", "sample_rate": 0x10}'])
                      for _ in range(count)]
        attacks.append(Attack(family, tuple(frames), start))
    return attacks


def run_attack(url: str, attack: Attack, *, timeout_s: float = 30.0,
               headers: dict[str, str] | None = None) -> Outcome:
    """Play ``attack``, send ``stop``, and read until the summary or the close."""
    out = Outcome()
    try:
        ws = connect(url, additional_headers=headers, open_timeout=timeout_s, close_timeout=timeout_s,
                     max_size=None)
    except InvalidHandshake as e:
        out.refused = str(e)
        return out
    with ws:
        try:
            if attack.start is not None:
                ws.send(json.dumps(attack.start))
            for frame in attack.frames:
                ws.send(frame)
            ws.send(json.dumps({"type": "stop"}))
            while True:
                raw = ws.recv(timeout=timeout_s)
                try:
                    msg = json.loads(raw)
                except (TypeError, ValueError):
                    msg = raw
                out.replies.append(msg)
                if isinstance(msg, dict) and msg.get("type") == "summary":
                    out.summary = True
                    break
        except ConnectionClosed as e:
            if e.rcvd is not None:
                out.close_code, out.close_reason = e.rcvd.code, e.rcvd.reason
        except TimeoutError:
            out.replies.append("<no reply within the timeout>")
    return out


def problems(outcome: Outcome) -> list[str]:
    """Everything wrong with what the server answered (empty: a clean answer)."""
    bad: list[str] = []
    if outcome.refused:
        bad.append(f"handshake refused: {outcome.refused}")
    for msg in outcome.replies:
        if not isinstance(msg, dict) or msg.get("type") not in REPLY_TYPES:
            bad.append(f"not a protocol message: {str(msg)[:80]!r}")
        elif msg["type"] == "error" and (msg.get("code") not in ERROR_CODES or not msg.get("message")):
            bad.append(f"error without a known code and a message: {msg}")
    if outcome.close_code not in (None, 1000):
        try:
            reason = json.loads(outcome.close_reason)
            assert isinstance(reason, dict) and isinstance(reason.get("code"), str)
        except (ValueError, AssertionError):
            bad.append(f"close {outcome.close_code} without a JSON reason: {outcome.close_reason!r}")
    if not outcome.summary and outcome.close_code is None and not any(
            isinstance(m, dict) and m.get("type") == "error" for m in outcome.replies):
        bad.append("ended with neither a summary, an error event nor a close code")
    return bad


def http_cases(n: int, *, seed: int = 0) -> list[bytes]:
    """Raw HTTP requests: NUL bytes and over-long names in the path, traversal, bad request lines, …"""
    rng = random.Random(seed)
    paths = ["/%00", "/index.html%00.js", "/" + "a" * 300, "/" + "b" * 256 + ".html", "/../../etc/passwd",
             "/%2e%2e/%2e%2e/Makefile", "/%ff%fe", "/\u00e9".encode().decode("latin-1"), "/index.html?x=" + "y" * 4000,
             "//", "/static/", "/overlay.html/..", "/simulsub.js;", "/%c0%ae%c0%ae/"]
    out: list[bytes] = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            out.append(f"GET {rng.choice(paths)} HTTP/1.1\r\nHost: x\r\n\r\n".encode("latin-1"))
        elif kind == 1:
            out.append(b"GET /" + rng.randbytes(rng.randrange(1, 300)).replace(b" ", b"_").replace(b"\r", b"")
                       .replace(b"\n", b"") + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        elif kind == 2:
            out.append(b"GET /\x00" + b"x" * rng.randrange(0, 400) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        elif kind == 3:
            out.append(rng.choice([b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
                                   b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                                   b"GET / HTTP/1.1\r\n" + b"X-Long: " + b"h" * 9000 + b"\r\n\r\n",
                                   b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"]))
        else:
            out.append(rng.randbytes(rng.randrange(1, 200)) + b"\r\n\r\n")
    return out


def run_http(host: str, port: int, request: bytes, *, timeout_s: float = 10.0) -> str:
    """Send one raw request; the response's status line ('' when the server just closed)."""
    with socket.create_connection((host, port), timeout=timeout_s) as s:
        try:
            s.sendall(request)
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, BrokenPipeError):
            return ""
    return data.split(b"\r\n", 1)[0].decode("latin-1")


class RawClient:
    """A WebSocket client on a bare socket: it never answers pings and can reset the connection."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)  # feel the server's backpressure
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += self.sock.recv(1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {head.splitlines()[0]!r}")

    def send(self, payload: str | bytes) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        header = bytes([0x81 if isinstance(payload, str) else 0x82])
        n = len(data)
        header += bytes([0x80 | n]) if n < 126 else (bytes([0x80 | 126]) + struct.pack("!H", n) if n < 65536
                                                     else bytes([0x80 | 127]) + struct.pack("!Q", n))
        mask = os.urandom(4)
        masked = (np.frombuffer(data, np.uint8) ^ np.resize(np.frombuffer(mask, np.uint8), n)).tobytes()
        self.sock.sendall(header + mask + masked)

    def frames(self, timeout: float = 10.0) -> Iterator[tuple[int, bytes]]:
        """(opcode, payload) of the server's frames until it closes or goes quiet for ``timeout`` s."""
        self.sock.settimeout(timeout)
        buf = b""

        def need(k: int) -> bytes:
            nonlocal buf
            while len(buf) < k:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError
                buf += chunk
            out, buf = buf[:k], buf[k:]
            return out

        try:
            while True:
                b0, b1 = need(2)
                n = b1 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", need(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", need(8))[0]
                yield b0 & 0x0F, need(n)
        except (EOFError, TimeoutError, ConnectionResetError):
            return

    def send_until_pushed_back(self, pcm: bytes, *, frame_bytes: int = 3200, timeout_s: float = 1.0) -> int:
        """Send ``pcm`` in binary frames until a send blocks for ``timeout_s`` (every buffer on the way is full:
        the server pushes back) or all is sent; returns the bytes of PCM sent."""
        self.sock.settimeout(timeout_s)
        sent = 0
        try:
            for i in range(0, len(pcm), frame_bytes):
                self.send(pcm[i : i + frame_bytes])
                sent += len(pcm[i : i + frame_bytes])
        except TimeoutError:
            pass
        return sent

    def reset(self) -> None:
        """Abort with a TCP RST (what a killed client or a dropped network leaves behind)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
