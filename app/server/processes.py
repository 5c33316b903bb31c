"""``simulsub serve --procs N``: N server processes behind one port, so the Python work of many sessions uses N cores.

One server process runs every session's pipeline logic (frontend, CIF, beam search over the ASR slots, the
policy) under one interpreter lock: on a 2-core machine it saturates one core of Python long before the CPUs are
busy. With ``--procs N`` the parent listens on the port and starts N children, each a complete server (its own
models, batching and session limit ``ceil(max_sessions / N)``); the parent hands each new connection to the
child with the fewest open connections (:mod:`app.server.handoff`), and a session lives in that child from
start to summary. The protocol is unchanged.

The parent supervises: a child that dies is started again (its sessions' finals are already on disk in the
sessions directory; their clients see the connection drop and may reconnect); connections wait in the kernel's
queue while no child is ready. Ctrl-C or SIGTERM to the parent stops every child the way Ctrl-C stops a single
server.
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing as mp
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.server.handoff import Dispatcher, channel_pair, listen

logger = logging.getLogger(__name__)

MAX_PROCS = 64
RESTART_BACKOFF_S = 1.0  # a child that keeps dying is restarted at most once a second


@dataclass(frozen=True)
class ProcessPlan:
    """How ``procs`` children share the server: each child's session limit (ceil of the total / procs)."""

    procs: int
    max_sessions: int

    @property
    def sessions_per_child(self) -> int:
        return max(1, math.ceil(self.max_sessions / self.procs))


def child_args(args: argparse.Namespace, plan: ProcessPlan, channel: socket.socket | None = None,
               port: int | None = None) -> argparse.Namespace:
    """A child's options: the parent's, one process, its share of the sessions, its end of the hand-off channel
    and the port the parent listens on."""
    d = dict(vars(args))
    d.update(procs=1, max_sessions=plan.sessions_per_child, handoff=channel,
             port=args.port if port is None else port)
    return argparse.Namespace(**d)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _child_main(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> None:
    """A child: the parent's logging, SIGTERM as Ctrl-C (sessions finalised), errors as one line and exit 2."""
    import sys

    from app.cli import configure_logging, one_line
    from streaming.errors import SimulsubError

    configure_logging(bool(getattr(args, "verbose", False)))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops the children in order
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = run(args)
    except SimulsubError as e:
        print(f"simulsub serve: error: {one_line(e)}", file=sys.stderr, flush=True)
        code = e.exit_code
    except KeyboardInterrupt:
        code = 0
    raise SystemExit(code)


class ProcessGroup:
    """The children of one ``serve --procs N``: started, fed connections, watched, restarted, stopped."""

    def __init__(self, run: Callable[[argparse.Namespace], int], args: argparse.Namespace, plan: ProcessPlan,
                 dispatcher: Dispatcher) -> None:
        self.run, self.args, self.plan, self.dispatcher = run, args, plan, dispatcher
        self.ctx = mp.get_context("spawn")  # no fork: the model runtimes hold threads
        self.children: list[Any] = []
        self.restarts = 0
        self._stopping = False

    def _spawn(self, index: int) -> Any:
        parent_end, child_end = channel_pair()
        p = self.ctx.Process(target=_child_main,
                             args=(self.run, child_args(self.args, self.plan, child_end, self.dispatcher.port)),
                             name="simulsub-serve", daemon=False)
        p.start()  # the child end travels to the child with its arguments
        child_end.close()
        self.dispatcher.attach(index, parent_end)
        return p

    def start(self) -> None:
        self.children = [self._spawn(i) for i in range(self.plan.procs)]

    def watch(self, *, poll_s: float = 0.5, until: Callable[[], bool] | None = None) -> None:
        """Hand off connections and restart children that exit, until :meth:`stop` (or ``until()`` is true)."""
        next_restart = 0.0
        while not self._stopping and not (until is not None and until()):
            self.dispatcher.poll(poll_s)
            for i, p in enumerate(self.children):
                if p.is_alive() or self._stopping:
                    continue
                if p.exitcode == 2:  # a usage error (a bad option): restarting cannot help
                    logger.error("a server process exited with a usage error; stopping")
                    self._stopping = True
                    break
                self.dispatcher.detach(i)
                if time.monotonic() < next_restart:
                    continue  # restarted on a later round
                logger.warning("server process %d exited (code %s); starting it again", p.pid, p.exitcode)
                self.children[i] = self._spawn(i)
                self.restarts += 1
                next_restart = time.monotonic() + RESTART_BACKOFF_S

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every child (a Ctrl-C for its server), then wait; kill what remains after ``timeout_s``."""
        self._stopping = True
        for p in self.children:
            if p.is_alive():
                p.terminate()
        deadline = time.monotonic() + timeout_s
        for p in self.children:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(5)
        self.dispatcher.close()

    @property
    def exitcode(self) -> int:
        """2 when a child stopped on a usage error, else 0."""
        return 2 if any(p.exitcode == 2 for p in self.children) else 0


def serve_processes(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run ``args.procs`` servers on ``args.host:args.port`` until Ctrl-C / SIGTERM."""
    from app.errors import UserError

    if not 1 <= args.procs <= MAX_PROCS:
        raise UserError(f"--procs must be 1..{MAX_PROCS} (got {args.procs})")
    plan = ProcessPlan(args.procs, args.max_sessions)
    dispatcher = Dispatcher(listen(args.host, args.port), plan.procs)
    group = ProcessGroup(run, args, plan, dispatcher)
    signal.signal(signal.SIGTERM, _interrupt)
    group.start()
    print(f"simulsub serve: ws://{args.host}:{dispatcher.port} ({plan.procs} processes, up to "
          f"{plan.sessions_per_child} sessions each; Ctrl-C to stop)", flush=True)
    try:
        group.watch()
    except KeyboardInterrupt:
        pass
    finally:
        group.stop()
    return group.exitcode
