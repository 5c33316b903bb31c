"""``simulsub serve``: the WebSocket caption server for video calls and integrations (docs/protocol.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

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
    p.add_argument("--sessions-dir", default="work/sessions",
                   help="where each session's finals are persisted as JSONL + SRT ('' to disable)")
    p.add_argument("--allow-origin", action="append", default=None, metavar="ORIGIN",
                   help="browser origin allowed to connect (repeatable; default: pages served from localhost)")
    add_speech_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from app.server.server import CaptionServer, ServerOptions

    options = ServerOptions(host=args.host, port=args.port, token=args.token, max_sessions=args.max_sessions,
                            max_message_bytes=args.max_message_bytes, max_session_s=args.max_session_s,
                            workers=args.workers, out_dir=Path(args.sessions_dir) if args.sessions_dir else None,
                            origins=tuple(args.allow_origin) if args.allow_origin else None)
    server = CaptionServer(SpeechModels(speech_config(args)), options)
    try:
        asyncio.run(_serve(server))
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


async def _serve(server: Any) -> None:
    """Bind (a port in use is a UserError, before anything is printed), announce, serve until cancelled."""
    listening = await server.start()
    print(f"simulsub serve: ws://{server.options.host}:{server.port} (Ctrl-C to stop)", flush=True)
    await listening.serve_forever()
