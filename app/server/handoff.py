"""Connection hand-off for ``simulsub serve --procs N``: the parent accepts, the least-loaded child serves.

The parent owns the listening sockets. Each child is a complete server (its own models and sessions) that gets
its connections from the parent over a Unix ``SOCK_SEQPACKET`` channel: one message per accepted TCP connection,
the socket itself passed as ``SCM_RIGHTS``. The parent hands each new connection to the ready child with the
fewest open connections (ties: the one handed the fewest so far), so N children share the load evenly whatever
the clients' addresses; ``SO_REUSEPORT``, which placed connections by a hash of the client's address, left one
process saturated while another idled.

Messages, child → parent: ``ready`` (its server runs: connections may come), ``closed`` (one handed connection
ended). Parent → child: ``conn`` with one file descriptor. A child whose channel reaches end-of-file has lost its
parent: it closes its server (open sessions are finalised and persisted) and exits.

Both ends are plain classes: :class:`Dispatcher` for the parent (driven by :meth:`Dispatcher.poll` from the
supervisor's loop, no threads), :class:`HandoffReceiver` for a child's event loop.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import selectors
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from app.errors import UserError

logger = logging.getLogger(__name__)

READY, CLOSED, CONN = b"ready", b"closed", b"conn"
SEND_TIMEOUT_S = 2.0  # a child that cannot take a connection this long is skipped (its channel buffer is full)
LISTEN_BACKLOG = 1024  # connections the kernel queues while no child is ready yet


def channel_pair() -> tuple[socket.socket, socket.socket]:
    """(parent end, child end) of one child's channel: message boundaries kept, so one fd per message."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def listen(host: str, port: int) -> list[socket.socket]:
    """Listening TCP sockets for every address of ``host`` (as asyncio binds them), all on one port; port 0:
    the first address's free port. Raises :class:`UserError` when the address cannot be bound."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e} (check --host)") from None
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, addr in infos:
            if (family, addr[0]) in seen:
                continue
            seen.add((family, addr[0]))
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            bound_port = sockets[0].getsockname()[1] if sockets else port
            try:
                sock.bind((addr[0], bound_port, *addr[2:]))
            except OSError as e:
                sock.close()
                if sockets and e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                    continue  # e.g. "localhost" also names ::1 on a machine without IPv6
                raise
            sockets.append(sock)
            sock.listen(LISTEN_BACKLOG)
    except OSError as e:
        for s in sockets:
            s.close()
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e} "
                        "(another server on that port? pick one with --port)") from None
    return sockets


@dataclass
class ChildSlot:
    """The parent's view of one child: its channel, whether it takes connections, how many it holds."""

    channel: socket.socket | None = None
    ready: bool = False
    open: int = 0  # handed to it and not reported closed
    handed: int = 0  # handed to it since it started


class Dispatcher:
    """Parent side: accepts on ``listeners`` and hands each connection to the least-loaded ready child."""

    def __init__(self, listeners: list[socket.socket], children: int) -> None:
        self.listeners = listeners
        self.slots = [ChildSlot() for _ in range(children)]
        self.selector = selectors.DefaultSelector()
        self._accepting = False
        self.dropped = 0  # connections no child could take (closed: the client sees a reset and may retry)

    @property
    def port(self) -> int:
        return int(self.listeners[0].getsockname()[1])

    def attach(self, index: int, channel: socket.socket) -> None:
        """Child ``index`` (re)started with the parent end ``channel``: it takes connections once it is ready."""
        self.detach(index)
        channel.settimeout(SEND_TIMEOUT_S)
        self.slots[index] = ChildSlot(channel=channel)
        self.selector.register(channel, selectors.EVENT_READ, index)

    def detach(self, index: int) -> None:
        """Child ``index`` is gone: its channel closed, its connections forgotten (the OS closed them)."""
        slot = self.slots[index]
        if slot.channel is not None:
            self.selector.unregister(slot.channel)
            slot.channel.close()
        self.slots[index] = ChildSlot()
        self._sync_accepting()

    def pick(self, exclude: set[int] | None = None) -> int | None:
        """The ready child with the fewest open connections (then the fewest handed), or None."""
        ready = [i for i, s in enumerate(self.slots)
                 if s.ready and s.channel is not None and not (exclude and i in exclude)]
        return min(ready, key=lambda i: (self.slots[i].open, self.slots[i].handed, i)) if ready else None

    def _sync_accepting(self) -> None:
        """Watch the listeners only while some child is ready (until then the kernel queues connections)."""
        want = self.pick() is not None
        if want == self._accepting:
            return
        for sock in self.listeners:
            if want:
                self.selector.register(sock, selectors.EVENT_READ, None)
            else:
                self.selector.unregister(sock)
        self._accepting = want

    def poll(self, timeout_s: float) -> None:
        """One round: accept and hand off what is waiting, read what the children report (≤ ``timeout_s``)."""
        for key, _ in self.selector.select(timeout_s):
            if key.data is None:
                self._accept(key.fileobj)  # type: ignore[arg-type]
            else:
                self._read(int(key.data))

    def _accept(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        with conn:
            self.hand(conn)

    def hand(self, conn: socket.socket) -> int | None:
        """Pass ``conn`` to the least-loaded ready child (the parent's copy is the caller's to close); the child's
        index, or None when none could take it."""
        busy: set[int] = set()  # children whose channel stayed full for SEND_TIMEOUT_S: the next one is tried
        while (index := self.pick(exclude=busy)) is not None:
            slot = self.slots[index]
            assert slot.channel is not None
            try:
                socket.send_fds(slot.channel, [CONN], [conn.fileno()])
            except TimeoutError:
                logger.warning("server process %d takes no connections for now (its queue is full)", index)
                busy.add(index)
                continue
            except OSError as e:  # it exited: the supervisor restarts it
                logger.warning("server process %d cannot take connections (%s)", index, e)
                slot.ready = False
                self._sync_accepting()
                continue
            slot.open += 1
            slot.handed += 1
            return index
        self.dropped += 1
        logger.warning("no server process could take a connection: it was closed (the client may retry)")
        return None

    def _read(self, index: int) -> None:
        slot = self.slots[index]
        assert slot.channel is not None
        try:
            msg = slot.channel.recv(64)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return
        except OSError:
            msg = b""
        if msg == READY:
            slot.ready = True
        elif msg == CLOSED:
            slot.open = max(0, slot.open - 1)
        elif msg == b"":  # the child exited; the supervisor sees it and restarts it
            self.selector.unregister(slot.channel)
            slot.channel.close()
            slot.channel, slot.ready = None, False
        self._sync_accepting()

    def close(self) -> None:
        for i in range(len(self.slots)):
            self.detach(i)
        for sock in self.listeners:
            sock.close()
        self.selector.close()


def unreachable_listener() -> socket.socket:
    """A listening Unix socket no one can connect to (its path is removed at once): the websockets server of a
    child needs a serving listener, while its connections arrive through :class:`HandoffReceiver`."""
    directory = tempfile.mkdtemp(prefix="simulsub-")
    path = os.path.join(directory, "s")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(1)
    finally:
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(directory)
    return sock


class HandoffReceiver:
    """Child side: adopts the connections the parent hands over and reports them closed.

    ``adopt(sock)`` is called on the event loop for every received socket; ``parent_gone()`` once, when the
    channel ends."""

    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, adopt: Callable[[socket.socket], object], parent_gone: Callable[[], object]) -> None:
        """Listen on the running loop and tell the parent this child is ready."""
        self._loop = asyncio.get_running_loop()
        self.channel.setblocking(False)
        self._loop.add_reader(self.channel.fileno(), self._readable, adopt, parent_gone)
        self._send(READY)

    def _readable(self, adopt: Callable[[socket.socket], object], parent_gone: Callable[[], object]) -> None:
        try:
            msg, fds, _, _ = socket.recv_fds(self.channel, 64, 8)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            msg, fds = b"", []
        for fd in fds:
            adopt(socket.socket(fileno=fd))
        if msg == b"" and not fds:
            self.stop()
            logger.warning("the parent process is gone: closing this server")
            parent_gone()

    def closed(self) -> None:
        """One adopted connection ended."""
        self._send(CLOSED)

    def _send(self, msg: bytes) -> None:
        try:
            self.channel.send(msg)
        except OSError as e:  # parent gone (it is then stopping every child) or its buffer full
            logger.debug("cannot report %r to the parent: %s", msg, e)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.channel.fileno())
            self._loop = None
