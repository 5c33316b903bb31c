"""``simulsub web``: the Gradio live-caption page (microphone or file, SRT/VTT downloads)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from app.errors import UserError
from app.speech_session import SpeechModels, add_speech_arguments, speech_config


def add_parser(sub: Any) -> None:
    p = sub.add_parser("web", help="the Gradio live-caption page")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; any other address needs --auth)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--auth", metavar="USER:PASSWORD",
                   help="log-in required for the page (default $SIMULSUB_WEB_AUTH; required off loopback)")
    add_speech_arguments(p)
    p.set_defaults(run=run)


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def web_auth(host: str, auth: str | None) -> tuple[str, str] | None:
    """The page's log-in as (user, password); a non-loopback ``host`` without one is refused."""
    auth = auth if auth is not None else os.environ.get("SIMULSUB_WEB_AUTH") or None
    if auth is None:
        if host not in LOOPBACK:
            raise UserError(f"binding {host} exposes the page (and the microphone stream of whoever opens it) "
                            "beyond this machine: pass --auth USER:PASSWORD")
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or len(password) < 8:
        raise UserError("--auth must be USER:PASSWORD with a password of at least 8 characters")
    return user, password


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be in 0..65535 (got {args.port})")
    auth = web_auth(args.host, args.auth)
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UserError("the web page needs gradio: pip install -e '.[web]'") from None
    from web.gradio_app import CSS, build_app

    app = build_app(SpeechModels(speech_config(args)))
    try:
        app.queue(default_concurrency_limit=None).launch(server_name=args.host, server_port=args.port, css=CSS,
                                                         show_error=True, inbrowser=False, auth=auth)
    except OSError as e:
        raise UserError(f"cannot serve the page on {args.host}:{args.port}: {e} (pick another --port)") from None
    return 0
