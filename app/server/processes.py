"""``simulsub serve --procs N``: N server processes on one port, so the Python work of many sessions uses N cores.

One server process runs every session's pipeline logic (frontend, CIF, beam search over the ASR slots, the
policy) under one interpreter lock: on a 2-core machine it saturates one core of Python long before the CPUs are
busy. With ``--procs N`` the parent starts N children, each a complete server (its own models, batching and
session limit ``ceil(max_sessions / N)``) bound to the same address with ``SO_REUSEPORT``; the kernel hands each
new connection to one of them, and a session lives in that child from start to summary. The protocol is unchanged.

The parent supervises: a child that dies is started again (its sessions' finals are already on disk in the
sessions directory; their clients see the connection drop and may reconnect). Ctrl-C or SIGTERM to the parent
stops every child the way Ctrl-C stops a single server.
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing as mp
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


def child_args(args: argparse.Namespace, plan: ProcessPlan) -> argparse.Namespace:
    """A child's options: the parent's, one process, its share of the sessions, the shared port."""
    d = dict(vars(args))
    d.update(procs=1, max_sessions=plan.sessions_per_child, reuse_port=True)
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
    """The children of one ``serve --procs N``: started, watched, restarted, stopped."""

    def __init__(self, run: Callable[[argparse.Namespace], int], args: argparse.Namespace, plan: ProcessPlan) -> None:
        self.run, self.args, self.plan = run, args, plan
        self.ctx = mp.get_context("spawn")  # no fork: the model runtimes hold threads
        self.children: list[Any] = []
        self.restarts = 0
        self._stopping = False

    def _spawn(self) -> Any:
        p = self.ctx.Process(target=_child_main, args=(self.run, child_args(self.args, self.plan)),
                             name="simulsub-serve", daemon=False)
        p.start()
        return p

    def start(self) -> None:
        self.children = [self._spawn() for _ in range(self.plan.procs)]

    def watch(self, *, poll_s: float = 0.5, until: Callable[[], bool] | None = None) -> None:
        """Restart children that exit until :meth:`stop` (or ``until()`` is true)."""
        last_restart = 0.0
        while not self._stopping and not (until is not None and until()):
            for i, p in enumerate(self.children):
                if p.is_alive() or self._stopping:
                    continue
                if p.exitcode == 2:  # a usage error (port in use, bad option): restarting cannot help
                    logger.error("a server process exited with a usage error; stopping")
                    self._stopping = True
                    break
                wait = RESTART_BACKOFF_S - (time.monotonic() - last_restart)
                if wait > 0:
                    time.sleep(wait)
                logger.warning("server process %d exited (code %s); starting it again", p.pid, p.exitcode)
                self.children[i] = self._spawn()
                self.restarts += 1
                last_restart = time.monotonic()
            time.sleep(poll_s)

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

    @property
    def exitcode(self) -> int:
        """2 when a child stopped on a usage error, else 0."""
        return 2 if any(p.exitcode == 2 for p in self.children) else 0


def serve_processes(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run ``args.procs`` servers on ``args.host:args.port`` until Ctrl-C / SIGTERM."""
    from app.errors import UserError

    if not 1 <= args.procs <= MAX_PROCS:
        raise UserError(f"--procs must be 1..{MAX_PROCS} (got {args.procs})")
    if args.port == 0:
        raise UserError("--procs > 1 needs a fixed --port (the processes share it)")
    plan = ProcessPlan(args.procs, args.max_sessions)
    group = ProcessGroup(run, args, plan)
    signal.signal(signal.SIGTERM, _interrupt)
    group.start()
    print(f"simulsub serve: ws://{args.host}:{args.port} ({plan.procs} processes, up to "
          f"{plan.sessions_per_child} sessions each; Ctrl-C to stop)", flush=True)
    try:
        group.watch()
    except KeyboardInterrupt:
        pass
    finally:
        group.stop()
    return group.exitcode
