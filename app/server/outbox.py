"""A session's outgoing messages: bounded, partials coalesced, finals never dropped.

A slow client must not make the server hold an ever-growing backlog, nor stall other sessions. Partials are
replaceable: a newer partial of the same segment supersedes a queued one, and when the queue is over its
limit the oldest queued partials go first. Finals, errors and the summary are always kept and keep their order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class Outbox:
    """Single-consumer queue of JSON-ready dicts for one WebSocket (use from the event loop thread)."""

    def __init__(self, max_partials: int = 8) -> None:
        self.max_partials = max_partials
        self._items: deque[dict[str, Any]] = deque()
        self._ready = asyncio.Event()
        self.coalesced = 0
        self.closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, msg: dict[str, Any]) -> None:
        if msg.get("type") == "partial":
            for i, old in enumerate(self._items):
                if old.get("type") == "partial" and old.get("segment") == msg.get("segment"):
                    del self._items[i]
                    self.coalesced += 1
                    break
            partials = [m for m in self._items if m.get("type") == "partial"]
            while len(partials) >= self.max_partials:
                self._items.remove(partials.pop(0))
                self.coalesced += 1
        self._items.append(msg)
        self._ready.set()

    def close(self) -> None:
        """No more messages: ``get`` returns None once the queue is empty."""
        self.closed = True
        self._ready.set()

    async def get(self) -> dict[str, Any] | None:
        while not self._items:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()
