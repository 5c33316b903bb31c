"""The WebSocket caption server (websockets, asyncio): many sessions, one shared model set.

Per connection: an optional token check and a browser ``Origin`` check at the handshake, a session-count
limit, then the protocol of ``app.server.protocol``. Model compute runs in a thread pool (never on the event
loop); each session's work runs in order on it. Each session has its own bounded :class:`Outbox` and sender
task, so a slow client only coalesces its own partials and never delays other sessions. Finals are persisted
by the session as they happen; on an abrupt disconnect the open segment is finalised and persisted too.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from app.errors import UserError
from app.server.outbox import Outbox
from app.server.protocol import ProtocolError, StartRequest, decode_json, error_message, parse_start
from app.server.session import StreamSession
from app.speech_session import SpeechModels

logger = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "::1", "localhost")
STATIC_DIR = Path(__file__).resolve().parents[2] / "web" / "static"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".json": "application/json"}


def static_response(path: str) -> Response:
    """GET of the browser pages in ``web/static`` (``/`` is ``index.html``); 404 for anything else."""
    name = urlparse(path).path.lstrip("/") or "index.html"
    file = (STATIC_DIR / name).resolve()
    if STATIC_DIR not in file.parents or not file.is_file() or file.suffix not in CONTENT_TYPES:
        body = b"not found\n"
        return Response(404, "Not Found", Headers([("Content-Type", "text/plain"),
                                                   ("Content-Length", str(len(body)))]), body)
    body = file.read_bytes()
    headers = Headers([("Content-Type", CONTENT_TYPES[file.suffix]), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-cache")])
    return Response(200, "OK", headers, body)


@dataclass(frozen=True)
class ServerOptions:
    """Limits in bytes, seconds and sessions; ``origins``: allowed browser origins (None = loopback pages)."""

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    max_sessions: int = 8
    max_message_bytes: int = 1 << 20
    max_session_s: float = 4 * 3600.0
    idle_timeout_s: float = 120.0
    workers: int = 2
    out_dir: Path | None = Path("work/sessions")
    origins: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.host not in LOOPBACK and not self.token:
            raise UserError(f"binding {self.host} exposes the server beyond this machine: pass --token T "
                            "(clients then send it as ?token=T or an 'Authorization: Bearer T' header)")
        if self.max_sessions < 1 or self.workers < 1:
            raise UserError("--max-sessions and --workers must be ≥ 1")


def default_origins(port: int) -> tuple[str, ...]:
    hosts = ("localhost", "127.0.0.1", "[::1]")
    return tuple(f"{scheme}://{h}{p}" for scheme in ("http", "https") for h in hosts for p in ("", f":{port}"))


@dataclass
class ServerState:
    sessions: dict[str, StreamSession] = field(default_factory=dict)
    connections: int = 0
    refused: int = 0
    served: int = 0


class CaptionServer:
    """Owns the shared models, the thread pool and the running websockets server."""

    def __init__(self, models: SpeechModels, options: ServerOptions) -> None:
        self.models = models
        self.options = options
        self.state = ServerState()
        self.pool = ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="simulsub-model")
        self._server: Server | None = None

    # -- handshake ------------------------------------------------------------------------------------
    def _authorised(self, request: Request) -> bool:
        if not self.options.token:
            return True
        offered = parse_qs(urlparse(request.path).query).get("token", [""])[0]
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            offered = offered or header[len("Bearer "):]
        return hmac.compare_digest(offered.encode(), self.options.token.encode())

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return static_response(request.path)  # the caption pages: no secrets in them, no token needed
        if not self._authorised(request):
            return connection.respond(HTTPStatus.UNAUTHORIZED, "a valid token is required\n")
        origin = request.headers.get("Origin")
        allowed = self.options.origins or default_origins(self.options.port)
        if origin is not None and origin not in allowed and "*" not in allowed:
            return connection.respond(HTTPStatus.FORBIDDEN, f"origin {origin} is not allowed (--allow-origin)\n")
        return None

    # -- connection -----------------------------------------------------------------------------------
    async def _sender(self, ws: ServerConnection, outbox: Outbox) -> None:
        while (msg := await outbox.get()) is not None:
            try:
                await ws.send(json.dumps(msg, ensure_ascii=False))
            except ConnectionClosed:
                return

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def handler(self, ws: ServerConnection) -> None:
        outbox = Outbox()
        sender = asyncio.create_task(self._sender(ws, outbox))
        session: StreamSession | None = None
        admitted = self.state.connections < self.options.max_sessions
        if admitted:
            self.state.connections += 1  # a slot is held from the handshake on, so racing clients cannot overbook
        try:
            if not admitted:
                self.state.refused += 1
                outbox.put(error_message("too_many_sessions", f"the server is at its limit of "
                                         f"{self.options.max_sessions} sessions; try again later"))
                return
            session = await self._start(ws, outbox)
            if session is None:
                return
            await self._serve(ws, session, outbox)
        except ConnectionClosed:
            pass
        finally:
            if admitted:
                self.state.connections -= 1
            if session is not None:
                self.state.sessions.pop(session.id, None)
                for msg in await self._run(session.stop):  # flushes and persists the open segment
                    outbox.put(msg)
            outbox.close()
            try:
                await asyncio.wait_for(sender, timeout=10.0)
            except (TimeoutError, ConnectionClosed):
                sender.cancel()
            await ws.close()

    async def _start(self, ws: ServerConnection, outbox: Outbox) -> StreamSession | None:
        while True:
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=self.options.idle_timeout_s)
            except TimeoutError:
                outbox.put(error_message("timeout", "no start message"))
                return None
            if isinstance(raw, bytes):
                outbox.put(error_message("expected_start", "send the JSON start message before audio"))
                continue
            try:
                msg = decode_json(raw)
                if msg["type"] == "stop":
                    return None  # stopped before starting: nothing to do, close
                request = parse_start(msg)
            except ProtocolError as e:
                outbox.put(error_message(e.code, str(e)))
                continue
            sid = secrets.token_hex(6)
            try:
                session = await self._run(self._new_session, sid, request)
            except UserError as e:
                outbox.put(error_message("bad_start", str(e)))
                continue
            self.state.sessions[sid] = session
            self.state.served += 1
            logger.info("session %s started (%s, %s)", sid, request.input, session.policy_cfg.name)
            return session

    def _new_session(self, sid: str, request: StartRequest) -> StreamSession:
        return StreamSession(sid, request, self.models, out_dir=self.options.out_dir,
                             max_audio_s=self.options.max_session_s)

    async def _serve(self, ws: ServerConnection, session: StreamSession, outbox: Outbox) -> None:
        while True:
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=self.options.idle_timeout_s)
            except TimeoutError:
                outbox.put(error_message("timeout", f"nothing received for {self.options.idle_timeout_s:.0f} s"))
                return
            try:
                if isinstance(raw, bytes):
                    msgs = await self._run(session.audio, raw)
                else:
                    msg = decode_json(raw)
                    if msg["type"] == "stop":
                        return
                    if msg["type"] != "text" or not isinstance(msg.get("text"), str):
                        raise ProtocolError("bad_message", "expected binary PCM, {\"type\": \"text\", \"text\": "
                                                           "...} or {\"type\": \"stop\"}")
                    msgs = await self._run(session.text, msg["text"])
            except ProtocolError as e:
                outbox.put(error_message(e.code, str(e)))
                continue
            except ValueError as e:
                outbox.put(error_message("wrong_input", str(e)))
                continue
            for m in msgs:
                outbox.put(m)
            if session.over_limit():
                outbox.put(error_message("session_too_long", f"sessions are limited to "
                                         f"{self.options.max_session_s:.0f} s of audio"))
                return

    # -- lifecycle --------------------------------------------------------------------------------------
    async def start(self) -> Server:
        self._server = await serve(self.handler, self.options.host, self.options.port,
                                   max_size=self.options.max_message_bytes, process_request=self._process_request,
                                   ping_interval=20, ping_timeout=20)
        return self._server

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def serve_forever(self) -> None:
        server = await self.start()
        logger.info("listening on ws://%s:%d", self.options.host, self.port)
        await server.serve_forever()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        """Close every connection (their sessions are finalised and persisted) and stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.pool.shutdown(wait=False, cancel_futures=True)
