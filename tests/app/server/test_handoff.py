"""The ``serve --procs`` hand-off: the parent accepts and passes each connection to the least-loaded ready child
(real sockets, fake children: the child ends of the channels)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from app.errors import UserError
from app.server.handoff import CLOSED, READY, Dispatcher, HandoffReceiver, channel_pair, listen, unreachable_listener


def _children(dispatcher: Dispatcher, n: int) -> list[socket.socket]:
    ends = []
    for i in range(n):
        parent_end, child_end = channel_pair()
        dispatcher.attach(i, parent_end)
        child_end.settimeout(5)
        ends.append(child_end)
    return ends


def _ready_children(dispatcher: Dispatcher) -> list[socket.socket]:
    """Two children that have reported ready."""
    ends = _children(dispatcher, 2)
    for end in ends:
        end.send(READY)
    _poll(dispatcher)
    return ends


def _received(child_end: socket.socket) -> list[socket.socket]:
    """Every socket handed to this child so far."""
    child_end.setblocking(False)
    out = []
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(child_end, 64, 4)
        except BlockingIOError:
            break
        assert msg == b"conn" and len(fds) == 1
        out.append(socket.socket(fileno=fds[0]))
    child_end.settimeout(5)
    return out


def _connect(dispatcher: Dispatcher, n: int) -> list[socket.socket]:
    clients = [socket.create_connection(("127.0.0.1", dispatcher.port), timeout=5) for _ in range(n)]
    for _ in range(4 * n):
        dispatcher.poll(0.05)
    return clients


def _poll(dispatcher: Dispatcher, rounds: int = 5) -> None:
    for _ in range(rounds):
        dispatcher.poll(0.02)


def test_connections_go_to_the_least_loaded_ready_child() -> None:
    dispatcher = Dispatcher(listen("127.0.0.1", 0), 2)
    try:
        a, b = _children(dispatcher, 2)
        clients = _connect(dispatcher, 2)  # nobody is ready: the kernel keeps them queued
        assert _received(a) == [] and _received(b) == []
        a.send(READY)
        b.send(READY)
        _poll(dispatcher)
        clients += _connect(dispatcher, 8)
        got_a, got_b = _received(a), _received(b)
        assert (len(got_a), len(got_b)) == (5, 5)  # an even split, whatever the client ports hash to
        # the handed sockets are the clients' connections
        assert {s.getpeername() for s in got_a + got_b} == {c.getsockname() for c in clients}
        for _ in range(3):  # three of a's sessions end: the next three connections go to a
            a.send(CLOSED)
        _poll(dispatcher)
        clients += _connect(dispatcher, 3)
        assert (len(_received(a)), len(_received(b))) == (3, 0)
        assert [s.open for s in dispatcher.slots] == [5, 5] and dispatcher.dropped == 0
        for s in clients + got_a + got_b:
            s.close()
    finally:
        dispatcher.close()


def test_a_child_that_is_gone_gets_nothing_and_its_restart_starts_empty() -> None:
    dispatcher = Dispatcher(listen("127.0.0.1", 0), 2)
    try:
        a, b = _ready_children(dispatcher)
        clients = _connect(dispatcher, 2)
        assert len(_received(a)) == 1
        a.close()  # the child died
        clients += _connect(dispatcher, 3)
        assert len(_received(b)) == 1 + 3
        assert dispatcher.slots[0].channel is None
        parent_end, a2 = channel_pair()  # the supervisor's restart
        dispatcher.attach(0, parent_end)
        a2.send(READY)
        _poll(dispatcher)
        assert dispatcher.slots[0].open == 0
        clients += _connect(dispatcher, 2)
        assert len(_received(a2)) == 2  # the fresh child is the least loaded
        for s in clients:
            s.close()
    finally:
        dispatcher.close()


def test_listen_reports_a_taken_port_as_a_user_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(UserError, match="another server on that port"):
            listen("127.0.0.1", taken.getsockname()[1])


def test_the_unreachable_listener_has_no_address() -> None:
    sock = unreachable_listener()
    try:
        name = sock.getsockname()
        with socket.socket(socket.AF_UNIX) as probe, pytest.raises(OSError):
            probe.connect(name)
    finally:
        sock.close()


def test_the_receiver_adopts_sockets_reports_closes_and_notices_a_lost_parent() -> None:
    parent_end, child_end = channel_pair()
    parent_end.settimeout(5)
    client, server_side = socket.socketpair()

    async def main() -> tuple[list[socket.socket], bool]:
        adopted: list[socket.socket] = []
        gone = asyncio.Event()
        receiver = HandoffReceiver(child_end)
        receiver.start(adopted.append, gone.set)
        assert parent_end.recv(64) == READY
        socket.send_fds(parent_end, [b"conn"], [server_side.fileno()])
        for _ in range(100):
            if adopted:
                break
            await asyncio.sleep(0.01)
        receiver.closed()
        assert parent_end.recv(64) == CLOSED
        parent_end.close()
        await asyncio.wait_for(gone.wait(), 5)
        return adopted, gone.is_set()

    adopted, gone = asyncio.run(main())
    assert len(adopted) == 1 and gone
    client.sendall(b"x")
    assert adopted[0].recv(1) == b"x"
    for s in (client, server_side, child_end, *adopted):
        s.close()


def test_a_child_with_a_full_queue_is_skipped_but_stays_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    import app.server.handoff as handoff

    monkeypatch.setattr(handoff, "SEND_TIMEOUT_S", 0.05)
    dispatcher = Dispatcher(listen("127.0.0.1", 0), 2)
    try:
        _a, b = _ready_children(dispatcher)
        dispatcher.slots[1].open = 5  # b is busier: a would be picked
        full = dispatcher.slots[0].channel
        assert full is not None
        full.setblocking(False)
        with pytest.raises(BlockingIOError):
            while True:
                full.send(b"x" * 1024)  # a stopped reading: its queue fills
        full.settimeout(handoff.SEND_TIMEOUT_S)
        clients = _connect(dispatcher, 1)
        assert len(_received(b)) == 1 and dispatcher.slots[0].ready and dispatcher.dropped == 0
        for s in clients:
            s.close()
    finally:
        dispatcher.close()
