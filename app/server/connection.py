"""One WebSocket connection of the caption server: start handshake, then reader, processor and keepalive tasks.

- Before ``start``: the connection counts against ``max_pending`` (not against the sessions), and must send a
  valid ``start`` within ``start_timeout_s`` of connecting; invalid messages do not extend that deadline.
- The reader takes every frame off the socket as it arrives (so pings and pongs flow whatever the compute
  backlog) into the session's bounded :class:`app.server.inbox.Inbox`; it validates each message at the edge
  (types, encodings, sizes, text rate) and answers a bad one with an ``error`` event. Only valid input resets the
  idle timer; ``max_errors`` bad messages close the connection (1008).
- The processor feeds the session in bounded slices, each one job of the server's :class:`FairScheduler`.
- The keepalive pings the client and closes a connection that stops answering (1011), except while the reader
  waits for compute (the client's pong is then queued behind its own unread audio).
- A close frame without ``stop`` ends the stream like ``stop`` (its queued audio is still captioned and
  persisted). A cut connection (no close frame, or a TCP reset, noticed even while the reader is paused) or an
  abusive one has its slot released at once and its queued input dropped; the open segment is still finalised
  and persisted. Every way out sends the remaining finals and a ``summary`` when the socket is
  still open, and closes with a code and a JSON reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import time
from collections.abc import Awaitable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from app.errors import UserError
from app.server.inbox import Inbox, Work
from app.server.outbox import Outbox
from app.server.protocol import (
    ProtocolError,
    StartRequest,
    close_reason,
    decode_json,
    error_message,
    parse_session_message,
    parse_start,
)
from app.server.session import StreamSession
from streaming.errors import SimulsubError

if TYPE_CHECKING:
    from app.server.server import CaptionServer

logger = logging.getLogger(__name__)

SLICE_S = 0.5  # seconds of audio per compute job
SLICE_WORDS = 8  # words of text per compute job
CHARS_PER_WORD = 8.0  # the text rate limit counts a message as max(words, characters / 8) words
RECEIVE_BUFFER_BYTES = 64 * 1024  # kernel receive buffer (Linux doubles it): bounds audio stuck behind a dead client


PEER_CHECK_S = 0.25  # how often a backpressured connection is checked for a reset
TCP_CLOSE = 7  # tcpi_state of a connection the peer has reset (Linux <netinet/tcp.h>)


async def cancel_and_wait(task: asyncio.Task[Any], *, retry_s: float = 0.05) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling again while it goes on.

    ``asyncio.wait_for`` before Python 3.12 swallows a cancellation that arrives while its inner future completes
    (CPython gh-86296): the task then simply goes on (a keepalive loop back to its next sleep), and a plain
    ``cancel(); await task`` would wait for it forever. The task's result or exception is discarded."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=retry_s)
    if not task.cancelled() and (e := task.exception()) is not None and not isinstance(e, ConnectionClosed):
        logger.debug("task %s ended with %s: %s", task.get_name(), type(e).__name__, e)


def peer_reset(sock: socket.socket) -> bool:
    """Whether the peer has reset ``sock`` (without reading from it: queued data stays queued)."""
    try:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
            return True
        if hasattr(socket, "TCP_INFO"):
            return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == TCP_CLOSE
    except OSError:
        return True
    return False


class ClientSocket(Protocol):
    """What a connection needs of its WebSocket: websockets' ``ServerConnection``, or
    :class:`app.server.asgi_socket.AsgiSocket` (an ASGI WebSocket, e.g. behind Ray Serve's proxy). ``recv`` raises
    ``websockets.exceptions.ConnectionClosed`` once the connection has ended, with ``rcvd`` set when the client
    sent a close frame; ``transport`` is None where no socket is at hand (no TCP reset checks then)."""

    @property
    def transport(self) -> Any: ...

    async def recv(self) -> str | bytes: ...

    async def send(self, message: str) -> None: ...

    async def ping(self) -> Awaitable[float]: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class TooManyErrors(SimulsubError):
    """The client sent more invalid messages than the server tolerates."""


@dataclass
class TokenBucket:
    """``rate`` units per second, bursts up to ``burst`` (text words of a session)."""

    rate: float
    burst: float
    level: float = -1.0
    stamp: float = field(default_factory=time.monotonic)

    def take(self, n: float) -> bool:
        now = time.monotonic()
        self.level = self.burst if self.level < 0 else min(self.burst, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        if n > self.level:
            return False
        self.level -= n
        return True


class Connection:
    """Serves one client; :meth:`run` returns when the socket is closed."""

    def __init__(self, server: CaptionServer, ws: ClientSocket) -> None:
        self.server = server
        self.options = server.options
        self.ws = ws
        self.outbox = Outbox()
        self.errors = 0
        self.close_code: int = CloseCode.NORMAL_CLOSURE
        self.close_why = ""
        self.session: StreamSession | None = None
        self.request: StartRequest | None = None
        self._slot = False
        self._inflight: Future[list[dict[str, Any]]] | None = None  # the session's job on a model thread

    # -- the whole connection ------------------------------------------------------------------------
    async def run(self) -> None:
        sock = self.ws.transport.get_extra_info("socket") if self.ws.transport is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        sender = asyncio.create_task(self._send_loop())
        state = self.server.state
        try:
            if state.pending >= self.options.max_pending:
                state.refused += 1
                self._fail("busy", "too many connections are waiting to start; try again later",
                           CloseCode.TRY_AGAIN_LATER)
                return
            state.pending += 1
            try:
                started = await self._await_start()
            finally:
                state.pending -= 1
            if started:
                await self._stream()
        except TooManyErrors:
            self._fail("too_many_errors", f"more than {self.options.max_errors} invalid messages",
                       CloseCode.POLICY_VIOLATION)
        except ConnectionClosed:
            pass
        finally:
            self._release_slot()
            if self.session is not None:
                await self._finish_session()
            self.outbox.close()
            with contextlib.suppress(TimeoutError):  # wait_for cancels the sender of a client that does not read
                await asyncio.wait_for(sender, timeout=10.0)
            drain = asyncio.create_task(self._discard_input())  # the client's close frame may sit behind input
            try:
                await self.ws.close(self.close_code, close_reason(self.close_why) if self.close_why else "")
            finally:
                await cancel_and_wait(drain)

    # -- helpers ---------------------------------------------------------------------------------------
    def _error(self, code: str, message: str) -> None:
        self.outbox.put(error_message(code, message))

    def _fail(self, code: str, message: str, close_code: int) -> None:
        """Send an error event, then close with ``close_code`` once the session (if any) has ended."""
        self._error(code, message)
        self.close_code, self.close_why = close_code, code

    def _strike(self, code: str, message: str) -> None:
        """An invalid client message: an error event, and the connection ends past ``max_errors`` of them."""
        self._error(code, message)
        self.errors += 1
        if self.errors > self.options.max_errors:
            raise TooManyErrors

    def _release_slot(self) -> None:
        if self._slot:
            self._slot = False
            self.server.state.active -= 1
        if self.session is not None:
            self.server.state.sessions.pop(self.session.id, None)

    async def _send_loop(self) -> None:
        while (msg := await self.outbox.get()) is not None:
            try:
                text = json.dumps(msg, ensure_ascii=False)
                text.encode("utf-8")
            except (UnicodeEncodeError, TypeError, ValueError):
                text = json.dumps(msg, ensure_ascii=True, default=str)
            try:
                await self.ws.send(text)
            except ConnectionClosed:
                return

    async def _discard_input(self) -> None:
        """Read and drop whatever the client still sends while the connection closes (websockets stops reading
        the socket while unread messages are queued, so the closing handshake would otherwise wait for them)."""
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.ws.recv()

    # -- before start ----------------------------------------------------------------------------------
    async def _await_start(self) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.start_timeout_s
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                self._fail("timeout", f"no valid start message within {self.options.start_timeout_s:g} s "
                           "of connecting", CloseCode.POLICY_VIOLATION)
                return False
            try:
                raw = await asyncio.wait_for(self.ws.recv(), timeout=remaining)
            except TimeoutError:
                continue
            if isinstance(raw, bytes):
                self._strike("expected_start", "send the JSON start message before audio")
                continue
            try:
                msg = decode_json(raw)
                if msg["type"] == "stop":
                    return False  # stopped before starting: nothing to do, close
                request = parse_start(msg, self.server.language_pairs)
            except ProtocolError as e:
                self._strike(e.code, str(e))
                continue
            if self.server.state.active >= self.options.max_sessions:
                self.server.state.refused += 1
                self._fail("too_many_sessions", f"the server is at its limit of {self.options.max_sessions} "
                           "sessions; try again later", CloseCode.TRY_AGAIN_LATER)
                return False
            self.server.state.active += 1  # claimed before any await: racing clients cannot overbook
            self._slot = True
            sid = secrets.token_hex(6)
            try:
                session = await self.server.scheduler.run(sid, self.server.new_session, sid, request)
            except UserError as e:
                self._release_slot()
                self.server.scheduler.forget(sid)
                self._strike("bad_start", str(e))
                continue
            self.session, self.request = session, request
            self.server.state.sessions[sid] = session
            self.server.state.served += 1
            logger.info("session %s started (%s, %s)", sid, request.input, session.policy_cfg.name)
            return True

    # -- streaming -------------------------------------------------------------------------------------
    async def _stream(self) -> None:
        assert self.request is not None
        opts = self.options
        inbox = Inbox(max_audio_bytes=max(2, int(opts.max_backlog_s * self.request.sample_rate)) * 2,
                      max_words=opts.text_burst_words)
        reader = asyncio.create_task(self._read(inbox))
        processor = asyncio.create_task(self._process(inbox))
        keepalive = asyncio.create_task(self._keepalive(inbox))
        watch = asyncio.create_task(self._watch_peer(inbox))
        try:
            done, _ = await asyncio.wait({reader, processor, watch}, return_when=asyncio.FIRST_COMPLETED)
            how: str | None = None
            if watch in done:  # reset while the reader waited for compute: it would only see it after the backlog
                how = "cut"
                reader.cancel()
                logger.info("session %s: connection reset by the client (seen by the kernel)", self._sid)
            elif reader in done:
                how = reader.result()
                if how == "cut":
                    logger.info("session %s: connection reset by the client (no close frame)", self._sid)
            if how is not None:
                if how in ("cut", "abuse"):  # a clean close ("closed") is an end of stream: its backlog is kept
                    self._release_slot()  # the slot is free now, while the open segment is finalised
                    dropped = await inbox.clear()
                    self.server.scheduler.cancel(self._sid)
                    if dropped:
                        logger.info("session %s: input ended (%s), %d queued inputs dropped", self._sid, how,
                                    dropped)
                if how != "stop":
                    await inbox.put(Work("stop"))
                await processor
        finally:
            for task in (reader, processor, keepalive, watch):
                await cancel_and_wait(task)

    @property
    def _sid(self) -> str:
        return self.session.id if self.session is not None else "-"

    async def _read(self, inbox: Inbox) -> str:
        """Client input into ``inbox``; returns how the input ended: ``stop``, ``closed`` (the client sent a close
        frame), ``cut`` (the connection ended without one), ``timeout`` or ``abuse``."""
        try:
            return await self._read_input(inbox)
        except TooManyErrors:
            self._fail("too_many_errors", f"more than {self.options.max_errors} invalid messages",
                       CloseCode.POLICY_VIOLATION)
            return "abuse"

    async def _read_input(self, inbox: Inbox) -> str:
        assert self.request is not None
        opts, loop = self.options, asyncio.get_running_loop()
        text_input = self.request.input == "text"
        bucket = TokenBucket(opts.text_words_per_s, opts.text_burst_words)
        idle_deadline = loop.time() + opts.idle_timeout_s
        while True:
            remaining = idle_deadline - loop.time()
            if remaining <= 0:
                self._fail("timeout", f"no input for {opts.idle_timeout_s:g} s", CloseCode.NORMAL_CLOSURE)
                return "timeout"
            try:
                raw = await asyncio.wait_for(self.ws.recv(), timeout=remaining)
            except TimeoutError:
                continue
            except ConnectionClosed as e:
                return "closed" if e.rcvd is not None else "cut"
            if isinstance(raw, bytes):
                if text_input:
                    self._strike("wrong_input", "this session streams text: send {\"type\": \"text\", "
                                 "\"text\": ...} messages")
                    continue
                idle_deadline = loop.time() + opts.idle_timeout_s
                await inbox.put(Work("audio", audio=raw))
                continue
            try:
                text = parse_session_message(decode_json(raw))
            except ProtocolError as e:
                self._strike(e.code, str(e))
                continue
            if text is None:
                await inbox.put(Work("stop"))
                return "stop"
            if not text_input:
                self._strike("wrong_input", "this session streams audio: text messages need \"input\": "
                             "\"text\" in start")
                continue
            words = tuple(text.split())
            if len(words) > opts.max_text_words:
                self._strike("text_too_long", f"a text message holds at most {opts.max_text_words} words "
                             f"(this one {len(words)}); send it in parts")
                continue
            longest = max(map(len, words), default=0)
            if longest > opts.max_word_chars:
                self._strike("text_too_long", f"words are at most {opts.max_word_chars} characters (this message "
                             f"has one of {longest}); nothing of it was processed")
                continue
            cost = max(len(words), sum(map(len, words)) / CHARS_PER_WORD)  # long words count as several
            if not bucket.take(cost):
                self._error("rate_limited", f"text is limited to {opts.text_words_per_s:g} words/s (bursts of "
                            f"{opts.text_burst_words}); this message of {len(words)} words was not processed")
                continue
            idle_deadline = loop.time() + opts.idle_timeout_s
            if words:
                await inbox.put(Work("text", words=words))

    async def _process(self, inbox: Inbox) -> str:
        """Queued input through the session, one bounded scheduler job per slice; returns why it ended."""
        assert self.session is not None and self.request is not None
        session, scheduler = self.session, self.server.scheduler
        slice_bytes = max(2, int(SLICE_S * self.request.sample_rate) * 2)
        while True:
            work = await inbox.take(slice_bytes, SLICE_WORDS)
            if work.kind == "stop":
                return "stop"
            if work.kind == "audio":
                self._inflight = scheduler.submit(session.id, session.audio, work.audio)
            else:
                self._inflight = scheduler.submit(session.id, session.text, work.words)
            try:
                msgs = await asyncio.wrap_future(self._inflight)
            except Exception as e:
                logger.error("session %s: %s while processing input: %s", session.id, type(e).__name__, e)
                logger.debug("details", exc_info=True)
                self._fail("internal_error", "the server failed on this input; the session ends",
                           CloseCode.INTERNAL_ERROR)
                return "internal"
            for m in msgs:
                self.outbox.put(m)
            if session.over_limit():
                unit = "of audio" if self.request.input == "audio" else "long"
                self._fail("session_too_long", f"sessions are limited to {self.options.max_session_s:g} s {unit}",
                           CloseCode.NORMAL_CLOSURE)
                return "limit"

    async def _watch_peer(self, inbox: Inbox) -> None:
        """Return once the client's TCP connection is reset while the reader is paused by backpressure.

        A paused reader does not read the socket, so neither websockets nor asyncio notice a reset until the
        session's backlog has been computed; the kernel knows at once (TCP state CLOSE, or a pending socket
        error). A half-closed connection (FIN) is left alone: its client may still read the captions."""
        sock: socket.socket | None = (self.ws.transport.get_extra_info("socket")
                                      if self.ws.transport is not None else None)
        if sock is None:
            await asyncio.Future()  # no socket to look at: never returns (cancelled with the session)
            return
        while True:
            await asyncio.sleep(PEER_CHECK_S)
            if inbox.blocked and peer_reset(sock):
                return

    async def _keepalive(self, inbox: Inbox) -> None:
        """Ping every ``ping_interval_s``; close when a pong is ``ping_timeout_s`` late, unless the reader was
        waiting for compute meanwhile (then the pong is behind the client's own unread audio, not lost)."""
        opts = self.options
        while True:
            await asyncio.sleep(opts.ping_interval_s)
            if inbox.blocked:
                continue
            episodes = inbox.blocked_episodes
            try:
                pong = await self.ws.ping()
                await asyncio.wait_for(pong, timeout=opts.ping_timeout_s)
            except ConnectionClosed:
                return
            except TimeoutError:
                if inbox.blocked or inbox.blocked_episodes != episodes:
                    continue
                logger.warning("session %s: no pong for %g s, closing (1011)", self._sid, opts.ping_timeout_s)
                await self.ws.close(CloseCode.INTERNAL_ERROR, close_reason("keepalive_timeout", "no pong"))
                return

    async def _finish_session(self) -> None:
        """Remaining finals and the summary (the open segment is persisted even when the client is gone)."""
        session = self.session
        assert session is not None
        scheduler = self.server.scheduler
        if self._inflight is not None and not self._inflight.done():  # never two jobs of a session at once
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(asyncio.wrap_future(self._inflight))
        try:
            msgs: list[dict[str, Any]] = await scheduler.run(session.id, session.stop)
        except Exception as e:
            logger.error("session %s: %s while finishing: %s", session.id, type(e).__name__, e)
            logger.debug("details", exc_info=True)
            self._fail("internal_error", "the server failed to finish this session", CloseCode.INTERNAL_ERROR)
            session.files.close()
            msgs = [session.summary()]
        finally:
            scheduler.forget(session.id)
        for m in msgs:
            self.outbox.put(m)
        logger.info("session %s ended (%d finals)", session.id, session.finals)
