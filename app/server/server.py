"""The WebSocket caption server (websockets, asyncio): many sessions, one shared model set.

Per connection: a token check (``Authorization: Bearer T``, or the ``simulsub.token.<base64url T>``
subprotocol for browsers) and a browser ``Origin`` check at the handshake, then
:class:`app.server.connection.Connection` (start deadline, bounded input, validation, keepalive). Model compute
runs on the :class:`app.server.scheduler.FairScheduler` threads (never on the event loop), least-used session
first. Each session has its own bounded :class:`Outbox` and sender task, so a slow client only coalesces its own
partials. Finals are persisted by the session as they happen; on an abrupt disconnect the open segment is
finalised and persisted too. The HTTP side serves the caption pages of ``web/static`` and nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from app.batching import BatchingOptions
from app.errors import UserError
from app.server.connection import Connection
from app.server.handoff import HandoffReceiver, unreachable_listener
from app.server.protocol import CLOSE_CODE_NAMES, StartRequest, close_reason, echo
from app.server.scheduler import FairScheduler
from app.server.session import StreamSession
from app.speech_session import SpeechModels

logger = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "::1", "localhost")
SUBPROTOCOL = "simulsub"
TOKEN_SUBPROTOCOL = "simulsub.token."
STATIC_DIR = Path(__file__).resolve().parents[2] / "web" / "static"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".json": "application/json"}


def _plain(status: int, reason: str, text: str) -> Response:
    body = text.encode()
    return Response(status, reason, Headers([("Content-Type", "text/plain; charset=utf-8"),
                                             ("Content-Length", str(len(body)))]), body)


def static_files() -> dict[str, Path]:
    """URL name → file of every page in ``web/static`` (only these are ever served)."""
    if not STATIC_DIR.is_dir():
        return {}
    return {f.name: f for f in STATIC_DIR.iterdir() if f.is_file() and f.suffix in CONTENT_TYPES}


def static_response(path: str, files: dict[str, Path] | None = None) -> Response:
    """GET of the browser pages in ``web/static`` (``/`` is ``index.html``); 404 for anything else, whatever
    bytes the path holds (NUL, ``..``, over-long names)."""
    files = static_files() if files is None else files
    name = urlparse(path).path.lstrip("/") or "index.html"
    file = files.get(name)
    if file is None:
        return _plain(404, "Not Found", "not found\n")
    try:
        body = file.read_bytes()
    except OSError:
        return _plain(404, "Not Found", "not found\n")
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
    batching: BatchingOptions | None = None  # cross-session batches of translations (app.batching)
    remote_translation: bool = False  # translations run in other processes (serve --ray): threads wait for them
    out_dir: Path | None = Path("work/sessions")
    origins: tuple[str, ...] | None = None
    start_timeout_s: float = 10.0  # from connecting to a valid start; invalid messages do not extend it
    max_pending: int = 32  # connections that have not started a session yet
    max_errors: int = 20  # invalid messages a connection may send before it is closed (1008)
    max_backlog_s: float = 10.0  # seconds of a session's audio queued for compute before reading pauses
    max_text_words: int = 1000  # words in one text message
    text_words_per_s: float = 50.0  # sustained text rate of a session
    text_burst_words: int = 2000  # text words a session may send at once / keep queued
    max_segment_words: int = 60  # a text segment without a sentence end is finalised at this length
    max_segment_chars: int = 250  # … or before it grows past this many characters (the MT model takes 256 subwords)
    max_word_chars: int = 100  # longer "words" in a text message are refused (text_too_long)
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0

    def __post_init__(self) -> None:
        if self.host not in LOOPBACK and not self.token:
            raise UserError(f"binding {self.host} exposes the server beyond this machine: pass --token T "
                            "(clients then send an 'Authorization: Bearer T' header)")
        if self.max_sessions < 1 or self.workers < 1 or self.max_pending < 1:
            raise UserError("--max-sessions and --workers must be ≥ 1")
        if not 0 <= self.port <= 65535:
            raise UserError(f"--port must be in 0..65535 (got {self.port})")
        if self.max_message_bytes < 1024 or self.max_session_s <= 0 or self.idle_timeout_s <= 0:
            raise UserError("--max-message-bytes must be ≥ 1024, --max-session-s and the idle timeout > 0")

    @property
    def session_threads(self) -> int:
        """Threads running the sessions' pipelines: ``workers`` without batching; with batching or remote
        translation ``BATCH_THREADS_PER_WORKER`` × ``workers`` (at most one per session), so that translations of
        several sessions can wait (in one batch, or for another process) while others compute, without every
        session contending for the interpreter lock at once."""
        if self.batching is None and not self.remote_translation:
            return self.workers
        return max(self.workers, min(self.max_sessions, BATCH_THREADS_PER_WORKER * self.workers))


BATCH_THREADS_PER_WORKER = 4
"""Session threads per model thread with batching: sessions whose translation waits in a batch free the cores."""


class JsonCloseConnection(ServerConnection):
    """A connection whose protocol-level failures (an oversized message: 1009, bad UTF-8: 1007, a protocol
    violation: 1002) close with a JSON reason like every other close of this server."""

    def __init__(self, protocol: Any, *args: Any, **kwargs: Any) -> None:
        fail = protocol.fail

        def json_fail(code: int, reason: str = "") -> None:
            fail(code, close_reason(CLOSE_CODE_NAMES.get(int(code), "closed"), reason))

        protocol.fail = json_fail
        super().__init__(protocol, *args, **kwargs)
        self.on_lost: Callable[[], None] | None = None  # called once the TCP connection is closed

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.on_lost is not None:
            self.on_lost()


def default_origins(port: int) -> tuple[str, ...]:
    hosts = ("localhost", "127.0.0.1", "[::1]")
    return tuple(f"{scheme}://{h}{p}" for scheme in ("http", "https") for h in hosts for p in ("", f":{port}"))


def offered_token(authorization: str, protocols: Sequence[str]) -> str | None:
    """The token a client offers: ``Authorization: Bearer T``, else a ``simulsub.token.<base64url T>`` entry of
    its ``Sec-WebSocket-Protocol`` headers (``protocols``: each header's value)."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for offer in protocols:
        for proto in (p.strip() for p in offer.split(",")):
            if proto.startswith(TOKEN_SUBPROTOCOL):
                encoded = proto[len(TOKEN_SUBPROTOCOL):]
                try:
                    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
                except (ValueError, UnicodeDecodeError):
                    return None
    return None


def handshake_refusal(options: ServerOptions, *, authorization: str, protocols: Sequence[str], origin: str | None,
                      path: str) -> tuple[HTTPStatus, str] | None:
    """Why a WebSocket handshake is refused (HTTP status, body), or None to accept it: the token when the server
    has one (never from the URL), then the browser ``Origin``. Shared by the websockets server and the Ray Serve
    ingress (:mod:`app.server.ray_serve`)."""
    if options.token:
        offered = offered_token(authorization, protocols)
        if offered is None and "token=" in urlparse(path).query:
            return (HTTPStatus.UNAUTHORIZED, "tokens in the URL are not accepted (they end up in logs): send "
                    "'Authorization: Bearer T' or the 'simulsub.token.<base64url T>' subprotocol\n")
        if offered is None or not hmac.compare_digest(offered.encode(), options.token.encode()):
            return HTTPStatus.UNAUTHORIZED, "a valid token is required\n"
    allowed = options.origins or default_origins(options.port)
    if origin is not None and origin not in allowed and "*" not in allowed:
        return HTTPStatus.FORBIDDEN, f"origin {echo(origin)} is not allowed (--allow-origin)\n"
    return None


@dataclass
class ServerState:
    """``active``: session slots held; ``pending``: connections before their start message."""

    sessions: dict[str, StreamSession] = field(default_factory=dict)
    active: int = 0
    pending: int = 0
    refused: int = 0
    served: int = 0

    @property
    def connections(self) -> int:
        return self.active + self.pending


class CaptionServer:
    """Owns the shared models, the thread pool and the running websockets server."""

    def __init__(self, models: SpeechModels, options: ServerOptions, *,
                 handoff: HandoffReceiver | None = None) -> None:
        """``handoff``: this is one of the processes of ``serve --procs``, its connections handed over by the
        parent (which listens on ``options.port``)."""
        self.models = models
        self.options = options
        self.handoff = handoff
        self.state = ServerState()
        self.scheduler = FairScheduler(options.session_threads)
        self.static = static_files()
        policy = models.cfg.policy  # the languages the server's translation model was loaded for
        self.language_pairs = ((policy.source_lang or "en", policy.target_lang or "de"),)
        self._server: Server | None = None
        self._adopting: set[asyncio.Task[None]] = set()

    # -- handshake ------------------------------------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return static_response(request.path, self.static)  # the caption pages: no secrets, no token
        refusal = handshake_refusal(self.options, authorization=request.headers.get("Authorization", ""),
                                    protocols=request.headers.get_all("Sec-WebSocket-Protocol"),
                                    origin=request.headers.get("Origin"), path=request.path)
        return connection.respond(*refusal) if refusal is not None else None

    @staticmethod
    def _select_subprotocol(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
        """``simulsub`` when the client offers it (browsers that send their token as a subprotocol must get
        one back); the token subprotocol itself is never echoed."""
        return Subprotocol(SUBPROTOCOL) if SUBPROTOCOL in offered else None

    # -- connection -----------------------------------------------------------------------------------
    async def handler(self, ws: ServerConnection) -> None:
        await Connection(self, ws).run()

    def new_session(self, sid: str, request: StartRequest) -> StreamSession:
        """A session's models and files (runs on a model thread: loading a policy's model may take a while)."""
        return StreamSession(sid, request, self.models, out_dir=self.options.out_dir,
                             max_audio_s=self.options.max_session_s,
                             max_segment_words=self.options.max_segment_words,
                             max_segment_chars=self.options.max_segment_chars)

    # -- lifecycle --------------------------------------------------------------------------------------
    async def start(self) -> Server:
        """Listen on ``options.host:port``, or (a ``--procs`` child) take the connections the parent hands over."""
        where: dict[str, Any] = ({"host": self.options.host, "port": self.options.port} if self.handoff is None
                                 else {"sock": unreachable_listener()})
        try:
            self._server = await serve(self.handler, max_size=self.options.max_message_bytes, max_queue=4,
                                       process_request=self._process_request, ping_interval=None,
                                       select_subprotocol=self._select_subprotocol,
                                       create_connection=self._connection,  # type: ignore[arg-type]  # a factory, as documented
                                       **where)
        except OSError as e:
            raise UserError(f"cannot listen on {self.options.host}:{self.options.port}: {e.strerror or e} "
                            "(another server on that port? pick one with --port)") from None
        if self.handoff is not None:
            if not callable(getattr(self._server.server, "_protocol_factory", None)):
                raise UserError("--procs needs asyncio.Server._protocol_factory to hand connections to this process "
                                "(missing in this Python version): run without --procs")
            self.handoff.start(self._adopt, self._server.close)
        return self._server

    def _connection(self, protocol: Any, server: Server, **kwargs: Any) -> JsonCloseConnection:
        connection = JsonCloseConnection(protocol, server, **kwargs)
        if self.handoff is not None:
            connection.on_lost = self.handoff.closed
        return connection

    def _adopt(self, sock: socket.socket) -> None:
        """Serve a connection the parent accepted, as if this server had accepted it."""
        assert self._server is not None
        # websockets has no call to adopt an accepted socket; asyncio's Server keeps the protocol factory that
        # serve() built (the handshake, our connection class and handler) as ``_protocol_factory`` (3.7 and on)
        factory = self._server.server._protocol_factory  # type: ignore[attr-defined]
        made: list[JsonCloseConnection] = []

        def protocol() -> JsonCloseConnection:
            made.append(factory())
            return made[-1]

        async def adopt() -> None:
            try:
                await asyncio.get_running_loop().connect_accepted_socket(protocol, sock)
            except OSError as e:  # reset before it was served
                logger.debug("a handed-over connection failed: %s", e)
                sock.close()
                if not made and self.handoff is not None:  # else its connection_lost has reported it
                    self.handoff.closed()

        task = asyncio.get_running_loop().create_task(adopt())
        self._adopting.add(task)
        task.add_done_callback(self._adopting.discard)

    @property
    def port(self) -> int:
        assert self._server is not None
        if self.handoff is not None:
            return self.options.port  # the parent's
        return int(self._server.sockets[0].getsockname()[1])

    async def serve_forever(self) -> None:
        server = await self.start()
        logger.info("listening on ws://%s:%d", self.options.host, self.port)
        await server.serve_forever()

    def close(self) -> None:
        if self.handoff is not None:
            self.handoff.stop()
        if self._server is not None:
            self._server.close()
        self.scheduler.shutdown()

    async def aclose(self) -> None:
        """Close every connection (their sessions are finalised and persisted) and stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.scheduler.shutdown()
