"""A session's input waiting for compute: bounded, so a client that sends faster than the server computes is
slowed down by TCP backpressure instead of growing the server's memory or losing its connection.

The connection's reader puts every audio frame and text message here as soon as it arrives (so WebSocket
control frames — pings and pongs — keep flowing) and waits only when the backlog is over its limit; while it
waits, :attr:`Inbox.blocked` is true and the keepalive does not expect pongs (they sit behind the client's own
unread audio). The session's processor takes work in bounded slices (:meth:`Inbox.take`), one scheduler job
each, so no single job monopolises a model thread.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Literal

Kind = Literal["audio", "text", "stop"]


@dataclass(frozen=True)
class Work:
    """One slice of input: PCM bytes (``audio``), words (``text``) or the end of the stream (``stop``)."""

    kind: Kind
    audio: bytes = b""
    words: tuple[str, ...] = ()


class Inbox:
    """FIFO of client input with limits in bytes of PCM and in words of text (use from the event loop)."""

    def __init__(self, max_audio_bytes: int, max_words: int) -> None:
        self.max_audio_bytes = max_audio_bytes
        self.max_words = max_words
        self._items: deque[Work] = deque()
        self._audio_bytes = 0
        self._words = 0
        self._changed = asyncio.Condition()
        self.blocked = False
        self.blocked_episodes = 0  # times the reader had to wait (the keepalive's evidence of backpressure)

    @property
    def audio_bytes(self) -> int:
        return self._audio_bytes

    @property
    def words(self) -> int:
        return self._words

    def _full(self) -> bool:
        return self._audio_bytes >= self.max_audio_bytes or self._words >= self.max_words

    async def put(self, item: Work) -> None:
        """Queue ``item``; waits while the backlog is at its limit (an item is never split or dropped)."""
        async with self._changed:
            if self._full():
                self.blocked = True
                self.blocked_episodes += 1
                try:
                    await self._changed.wait_for(lambda: not self._full())
                finally:
                    self.blocked = False
            self._items.append(item)
            self._audio_bytes += len(item.audio)
            self._words += len(item.words)
            self._changed.notify_all()

    async def take(self, max_audio_bytes: int, max_words: int) -> Work:
        """The next slice: consecutive audio joined up to ``max_audio_bytes`` (whole samples), or up to
        ``max_words`` words of one text message, or ``stop``."""
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._items))
            head = self._items[0]
            if head.kind == "audio":
                parts: list[bytes] = []
                size = 0
                while self._items and self._items[0].kind == "audio" and size < max_audio_bytes:
                    item = self._items.popleft()
                    room = max_audio_bytes - size
                    if len(item.audio) > room:
                        if (size + room) % 2 and room > 1:
                            room -= 1  # slices of whole 16-bit samples where the limit allows
                        self._items.appendleft(Work("audio", audio=item.audio[room:]))
                        item = Work("audio", audio=item.audio[:room])
                    parts.append(item.audio)
                    size += len(item.audio)
                out = Work("audio", audio=b"".join(parts))
                self._audio_bytes -= size
            elif head.kind == "text":
                self._items.popleft()
                if len(head.words) > max_words:
                    self._items.appendleft(Work("text", words=head.words[max_words:]))
                    head = Work("text", words=head.words[:max_words])
                out = head
                self._words -= len(head.words)
            else:
                out = self._items.popleft()
            self._changed.notify_all()
            return out

    async def clear(self) -> int:
        """Drop everything queued (the client is gone); returns the number of items dropped."""
        async with self._changed:
            n = len(self._items)
            self._items.clear()
            self._audio_bytes = self._words = 0
            self._changed.notify_all()
            return n
