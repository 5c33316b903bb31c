"""``simulsub web``: the Gradio live-caption page (microphone or file, SRT/VTT downloads)."""

from __future__ import annotations

import argparse
from typing import Any

from app.errors import UserError
from app.speech_session import SpeechModels, add_speech_arguments, speech_config


def add_parser(sub: Any) -> None:
    p = sub.add_parser("web", help="the Gradio live-caption page")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    add_speech_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UserError("the web page needs gradio: pip install -e '.[web]'") from None
    from web.gradio_app import CSS, build_app

    app = build_app(SpeechModels(speech_config(args)))
    app.queue(default_concurrency_limit=None).launch(server_name=args.host, server_port=args.port, css=CSS,
                                                     show_error=True, inbrowser=False)
    return 0
