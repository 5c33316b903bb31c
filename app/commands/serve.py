"""``simulsub serve``: the WebSocket caption server for video calls and integrations (docs/protocol.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from app.batching import BatchingOptions
from app.errors import UserError
from app.speech_session import SpeechModels, add_speech_arguments, speech_config

logger = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the WebSocket caption server (see docs/protocol.md)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need --token)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--token", help="required from clients as an 'Authorization: Bearer T' header (browsers: the "
                   "'simulsub.token.<base64url T>' subprotocol; never in the URL)")
    p.add_argument("--max-sessions", type=int, default=8, help="concurrent sessions (default 8); more are refused")
    p.add_argument("--max-session-s", type=float, default=4 * 3600.0,
                   help="audio seconds per session (default 14400)")
    p.add_argument("--max-message-bytes", type=int, default=1 << 20, help="largest message accepted (default 1 MiB)")
    p.add_argument("--workers", type=int, default=2, help="model threads shared by all sessions (default 2)")
    p.add_argument("--batching", choices=("on", "off"), default="off",
                   help="on: the CTranslate2 translations of a process's sessions run as shared batches (same "
                        "captions; benchmarks/results/server_procs_runs.md); off: every session calls the models "
                        "alone (default)")
    p.add_argument("--batch-window-ms", type=float, default=BatchingOptions.window_ms,
                   help="how long a request waits for others to join its batch, ms (default "
                        f"{BatchingOptions.window_ms:g}; 0: only what is already queued)")
    p.add_argument("--max-batch", type=int, default=BatchingOptions.max_batch,
                   help=f"requests per batched model call (default {BatchingOptions.max_batch})")
    p.add_argument("--procs", type=int, default=1,
                   help="server processes, each with its own models and ceil(max-sessions / procs) sessions; this "
                        "process listens and hands every connection to the one with the fewest: the sessions' "
                        "Python work then uses that many cores (default 1)")
    p.add_argument("--ray", action="store_true",
                   help="run as a Ray Serve application: WebSocket ingress replicas (the sessions) and translation "
                        "replicas, on the cluster at --ray-address (docs/protocol.md, 'Ray Serve')")
    p.add_argument("--ray-address", default="auto",
                   help="--ray: the cluster ('auto': the one 'ray start --head' runs here; HOST:PORT; 'local': a "
                        "private one-machine cluster for the life of this command)")
    p.add_argument("--replicas", type=int, default=1,
                   help="--ray: ingress replicas, each with --max-sessions sessions and --workers model threads "
                        "(default 1)")
    p.add_argument("--translation-replicas", type=int, default=1,
                   help="--ray: translation replicas shared by all sessions (default 1; with --batching on each "
                        "batches the calls it gets)")
    p.add_argument("--max-replicas", type=int, default=0,
                   help="--ray: autoscale each deployment from its replica count up to this many (default 0: fixed)")
    p.add_argument("--sessions-dir", default="work/sessions",
                   help="where each session's finals are persisted as JSONL + SRT ('' to disable)")
    p.add_argument("--allow-origin", action="append", default=None, metavar="ORIGIN",
                   help="browser origin allowed to connect (repeatable; default: pages served from localhost)")
    add_speech_arguments(p)
    p.set_defaults(run=run, handoff=None)  # a channel to the parent in the children of --procs (app.server.processes)


def run(args: argparse.Namespace) -> int:
    from app.server.handoff import HandoffReceiver
    from app.server.server import CaptionServer, ServerOptions

    if args.procs != 1:
        if args.ray:
            raise UserError("--procs and --ray exclude each other (with --ray, scale with --replicas)")
        from app.server.processes import serve_processes

        return serve_processes(run, args)

    try:
        batching = (BatchingOptions(window_ms=args.batch_window_ms, max_batch=args.max_batch)
                    if args.batching == "on" else None)
    except ValueError as e:
        raise UserError(f"--batch-window-ms / --max-batch: {e}") from None
    options = ServerOptions(host=args.host, port=args.port, token=args.token, max_sessions=args.max_sessions,
                            max_message_bytes=args.max_message_bytes, max_session_s=args.max_session_s,
                            workers=args.workers, batching=batching,
                            out_dir=Path(args.sessions_dir) if args.sessions_dir else None,
                            origins=tuple(args.allow_origin) if args.allow_origin else None,
                            remote_translation=args.ray)
    if args.ray:
        _ray_token_auth()
        try:
            from app.server.ray_serve import RayPlan, serve_on_ray
        except ImportError as e:
            raise UserError(f"--ray needs Ray Serve ({e}): pip install 'ray[serve]' (make setup installs it)") \
                from None
        plan = RayPlan(ingress_replicas=args.replicas, translation_replicas=args.translation_replicas,
                       max_replicas=args.max_replicas, batching=batching)
        return serve_on_ray(args, speech_config(args), options, plan)
    models = SpeechModels(speech_config(args), batching=batching)
    handoff = HandoffReceiver(args.handoff) if args.handoff is not None else None
    server = CaptionServer(models, options, handoff=handoff)
    try:
        asyncio.run(_serve(server))
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        if batching is not None:
            logger.info("batches: %s", models.batch_stats())
        models.close()
    return 0


RAY_TOKEN_FILE = Path.home() / ".ray" / "auth_token"  # where Ray keeps the token of the clusters it starts


def _ray_token_auth() -> None:
    """Token authentication on when a Ray token is at hand (``ray start`` turns it on for its cluster, but a
    driver that connects must say so, before Ray is imported): ``RAY_AUTH_MODE`` set by the user wins."""
    if "RAY_AUTH_MODE" not in os.environ and (RAY_TOKEN_FILE.is_file() or "RAY_AUTH_TOKEN" in os.environ):
        os.environ["RAY_AUTH_MODE"] = "token"


async def _serve(server: Any) -> None:
    """Bind (a port in use is a UserError, before anything is printed), announce, serve until cancelled."""
    listening = await server.start()
    if server.handoff is not None:  # one of the processes of --procs N
        print(f"simulsub serve: process {os.getpid()} listening on ws://{server.options.host}:{server.port} "
              "(connections from the parent)", flush=True)
    else:
        print(f"simulsub serve: ws://{server.options.host}:{server.port} (Ctrl-C to stop)", flush=True)
    await listening.serve_forever()
