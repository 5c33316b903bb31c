"""An ASGI WebSocket (Starlette's, as Ray Serve's proxy hands it to a replica) seen as the caption server's
:class:`app.server.connection.ClientSocket`, so one :class:`app.server.connection.Connection` serves both.

- ``recv`` returns text or bytes and raises ``websockets.exceptions.ConnectionClosed`` once the client is gone:
  with ``rcvd`` set when it closed with a close frame (codes other than 1005/1006), with ``rcvd`` None when the
  connection was cut (1006) or a message exceeded ``max_message_bytes`` (then the server closes with 1009 and a
  JSON reason, as the websockets server does).
- ``ping`` answers at once: ASGI gives an application no pings; the front server (uvicorn in Ray Serve's proxy)
  pings the client itself and drops a connection that stops answering.
- ``transport`` is None: the TCP socket is in the proxy's process, so there are no reset checks while the reader
  is paused (a cut connection is seen when the reader resumes).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, CloseCode

from app.server.protocol import close_reason

ABNORMAL = (CloseCode.NO_STATUS_RCVD, CloseCode.ABNORMAL_CLOSURE)  # 1005, 1006: no close frame from the client


class AsgiSocket:
    """A Starlette ``WebSocket`` that has been accepted (its ``receive``/``send_text``/``close``)."""

    transport: Any = None

    def __init__(self, websocket: Any, *, max_message_bytes: int) -> None:
        self.websocket = websocket
        self.max_message_bytes = max_message_bytes
        self._ended: ConnectionClosed | None = None  # set once: every later recv/send raises it again
        self._send_lock = asyncio.Lock()

    def _end(self, rcvd: Close | None, sent: Close | None = None) -> ConnectionClosed:
        if self._ended is None:
            self._ended = ConnectionClosed(rcvd, sent)
        return self._ended

    async def recv(self) -> str | bytes:
        """The next message (str or bytes); ``ConnectionClosed`` once the connection has ended."""
        if self._ended is not None:
            raise self._ended
        try:
            msg = await self.websocket.receive()
        except (RuntimeError, OSError):  # receive after a disconnect, or the transport went away
            raise self._end(None) from None
        if msg["type"] == "websocket.disconnect":
            code = int(msg.get("code") or CloseCode.ABNORMAL_CLOSURE)
            raise self._end(None if code in ABNORMAL else Close(code, str(msg.get("reason") or "")))
        data: str | bytes | None = msg.get("text")
        if data is None:
            data = msg.get("bytes") or b""
        size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
        if size > self.max_message_bytes:
            reason = close_reason("message_too_big", f"{size} bytes > {self.max_message_bytes}")
            await self._close_quietly(CloseCode.MESSAGE_TOO_BIG, reason)
            raise self._end(None, Close(CloseCode.MESSAGE_TOO_BIG, reason))
        return data

    async def send(self, message: str) -> None:
        """One text message; ``ConnectionClosed`` when the client is gone."""
        if self._ended is not None and self._ended.sent is not None:
            raise self._ended
        try:
            async with self._send_lock:
                await self.websocket.send_text(message)
        except Exception:  # Starlette raises several kinds (WebSocketDisconnect, RuntimeError, OSError)
            raise self._end(None) from None

    async def ping(self) -> asyncio.Future[float]:
        """An already answered ping (the front server keeps the connection alive; see the module docstring)."""
        pong: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        pong.set_result(0.0)
        return pong

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close with ``code`` and ``reason`` (idempotent; nothing happens once the client is gone)."""
        await self._close_quietly(code, reason)
        if self._ended is None:
            self._ended = ConnectionClosed(None, Close(code, reason))

    async def _close_quietly(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            async with self._send_lock:
                await self.websocket.close(code, reason)
