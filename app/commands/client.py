"""``simulsub client``: stream a microphone, an input device or a file to ``simulsub serve``; show captions, write SRT.

For a video call, pick the device that carries the call's audio: a loopback or "monitor" input (PulseAudio /
PipeWire: ``Monitor of …``; macOS: BlackHole; Windows: Stereo Mix / VB-Cable), listed by ``--list-devices``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from app.audio_sources import AudioChunk, file_source, list_input_devices, microphone_source, paced, parse_device
from app.errors import UserError, check_range
from app.policies import policy_names
from app.sinks import CaptionView, SrtFile
from app.stream_resume import StreamResume, resumable
from streaming.pcm import encode_pcm16
from streaming.types import SAMPLE_RATE


def add_parser(sub: Any) -> None:
    p = sub.add_parser("client", help="stream audio to a simulsub server and show the captions")
    p.add_argument("--url", default="ws://127.0.0.1:8765", help="server URL (default ws://127.0.0.1:8765)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--mic", action="store_true", help="capture the microphone / input device (default)")
    src.add_argument("--file", metavar="F", help="stream an audio file instead (in real time unless --fast)")
    p.add_argument("--device", help="input device name or index (a call's loopback/monitor device for video calls)")
    p.add_argument("--list-devices", action="store_true", help="list the input devices and exit")
    p.add_argument("--fast", action="store_true", help="with --file: send as fast as possible")
    p.add_argument("--policy", choices=policy_names(), help="ask the server for this policy")
    p.add_argument("--token", help="server token (sent as 'Authorization: Bearer')")
    p.add_argument("--srt", metavar="OUT.srt", help="write the final captions as SRT")
    p.add_argument("--json", action="store_true", help="print every server message as one JSON line")
    p.add_argument("--reconnect", type=int, default=5, metavar="N",
                   help="when the connection drops (server process or replica gone, network cut), resume on a new "
                        "session up to N times in a row: the audio since the last final is sent again and the "
                        "captions go on (default 5; 0: end with an error)")
    p.set_defaults(run=run)


class CaptionPrinter:
    """The server's messages on this side: the terminal caption view (or, with ``as_json``, every message as one
    JSON line), the SRT file of the finals, server errors on stderr, and the summary kept for the exit status."""

    def __init__(self, srt: SrtFile | None, as_json: bool) -> None:
        self.srt = srt
        self.as_json = as_json
        self.view = None if as_json else CaptionView(sys.stdout)
        self.summary: dict[str, Any] | None = None
        self.errors: list[dict[str, Any]] = []

    def handle(self, msg: dict[str, Any]) -> None:
        if self.as_json:
            print(json.dumps(msg, ensure_ascii=False), flush=True)
        elif self.view is not None:
            self.view.show_message(msg)
        kind = msg.get("type")
        if kind == "final":
            if self.srt:
                self.srt.add(str(msg["target"]), float(msg["start_ms"]), float(msg["end_ms"]))
        elif kind == "error":
            self.errors.append(msg)
            if not self.as_json:
                print(f"server error [{msg.get('code')}]: {msg.get('message')}", file=sys.stderr, flush=True)
        elif kind == "summary":
            self.summary = msg

    def close(self) -> None:
        """The SRT file into place (what the server sent: also after Ctrl-C or an early close)."""
        if self.srt:
            self.srt.commit()

    def abort(self) -> Path | None:
        """The SRT path left as it was; returns the partial file kept (None: nothing to keep)."""
        return self.srt.abort() if self.srt else None


async def stream(url: str, chunks: Any, printer: CaptionPrinter, *, policy: str | None, token: str | None,
                 stop_event: threading.Event | None = None, reconnect: int = 0) -> None:
    """Connect (token as an ``Authorization: Bearer`` header) and run the exchange. A connection that ends before
    the summary is resumed on a new session up to ``reconnect`` times in a row (:mod:`app.stream_resume`), else it
    is a :class:`UserError` naming the server's close code and reason."""
    from websockets.exceptions import ConnectionClosed

    resume = StreamResume()
    iterator = iter(chunks)
    replay: np.ndarray | None = None
    failures = 0
    while True:
        try:
            ws = await _connect(url, token)
        except UserError:
            if replay is None or failures >= reconnect:
                raise
            failures += 1
            await asyncio.sleep(_backoff_s(failures))
            continue
        try:
            await _exchange(ws, iterator, printer, resume, policy=policy, stop_event=stop_event, replay=replay)
            return
        except ConnectionClosed as e:
            if printer.summary is not None:
                return
            code, reason = _close_code(e)
            if failures >= reconnect or not resumable(code, reason):
                raise UserError(f"the server closed the connection: {describe_close(e)}") from None
            failures = 0 if resume.finals_since_resume else failures
            failures += 1
            replay = resume.resume()
            print(f"simulsub client: connection lost ({describe_close(e)}); resuming on a new session "
                  f"(attempt {failures} of {reconnect}, {replay.size / SAMPLE_RATE:.1f} s of audio sent again)",
                  file=sys.stderr, flush=True)
            await asyncio.sleep(_backoff_s(failures))
        finally:
            await ws.close()


async def _connect(url: str, token: str | None) -> Any:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidHandshake, InvalidURI

    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        # pings keep the connection alive but never time out: while the server computes a backlog (--fast),
        # its pongs wait behind our own audio, and a timeout would drop a healthy session
        return await asyncio.wait_for(connect(url, additional_headers=headers, max_size=1 << 22, ping_interval=20,
                                              ping_timeout=None, open_timeout=None), timeout=30)
    except (OSError, InvalidURI, InvalidHandshake, TimeoutError) as e:
        raise UserError(f"cannot connect to {url}: {e or 'no answer within 30 s'}") from None


def _backoff_s(attempt: int) -> float:
    return min(5.0, 0.25 * 2 ** attempt)


def _json_reason(rcvd: Any) -> dict[str, Any] | None:
    """The server's JSON close reason (``{"code": ..., "message": ...}``), None when it sent another."""
    try:
        reason = json.loads(rcvd.reason)
    except ValueError:
        return None
    return reason if isinstance(reason, dict) else None


def _close_code(e: Exception) -> tuple[int | None, str | None]:
    """The close code the server sent (None: no close frame) and the ``code`` of its JSON reason."""
    rcvd = getattr(e, "rcvd", None)
    if rcvd is None:
        return None, None
    reason = _json_reason(rcvd)
    return int(rcvd.code), (str(reason.get("code")) if reason is not None else None)


def describe_close(e: Exception) -> str:
    """A closed connection in one line: its code and the server's JSON reason, when it sent one."""
    rcvd = getattr(e, "rcvd", None)
    if rcvd is None:
        return "no close frame (the connection was cut)"
    reason = _json_reason(rcvd)
    detail = f"{reason.get('code')}: {reason.get('message')}" if reason is not None else rcvd.reason
    return f"code {rcvd.code}" + (f" ({detail})" if detail else "")


async def _exchange(ws: Any, chunks: Any, printer: CaptionPrinter, resume: StreamResume, *, policy: str | None,
                    stop_event: threading.Event | None, replay: np.ndarray | None = None) -> None:
    """Send ``start``, ``replay`` (a resumed session's audio since the last final), the PCM of every chunk, then
    ``stop``; hand every server message to ``printer`` in the client's stream time."""
    start: dict[str, Any] = {"type": "start", "sample_rate": SAMPLE_RATE}
    if policy:
        start["policy"] = policy
    await ws.send(json.dumps(start))

    async def receive() -> None:
        async for raw in ws:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue  # not ours: ignore rather than fail the stream
            if isinstance(msg, dict):
                printer.handle(resume.received(msg))

    receiver = asyncio.create_task(receive())
    loop = asyncio.get_running_loop()

    def next_chunk() -> AudioChunk | None:
        if stop_event is not None and stop_event.is_set():
            return None
        return next(chunks, None)

    async def send(samples: np.ndarray) -> None:
        resume.sent(samples)  # before sending: audio lost with the connection is sent again on the next one
        await ws.send(encode_pcm16(samples))

    if replay is not None:
        for i in range(0, replay.size, REPLAY_SAMPLES):
            await send(replay[i : i + REPLAY_SAMPLES])
    while (chunk := await loop.run_in_executor(None, next_chunk)) is not None:
        if receiver.done():
            break
        await send(chunk.samples)
    if not receiver.done():
        await ws.send(json.dumps({"type": "stop"}))
    await receiver


REPLAY_SAMPLES = SAMPLE_RATE  # a resumed session's replayed audio goes in 1 s messages


def run(args: argparse.Namespace) -> int:
    if args.list_devices:
        print(list_input_devices())
        return 0
    check_range("--reconnect", args.reconnect, 0, 1000)
    if args.file:
        if not Path(args.file).is_file():
            raise UserError(f"audio file {args.file} does not exist")
        chunks: Any = file_source(args.file)
        if not args.fast:
            chunks = paced(chunks)
    else:
        chunks = microphone_source(parse_device(args.device))
    printer = CaptionPrinter(SrtFile.open(args.srt) if args.srt else None, args.json)
    try:
        asyncio.run(stream(args.url, chunks, printer, policy=args.policy, token=args.token,
                           reconnect=args.reconnect))
    except KeyboardInterrupt:
        pass
    except BaseException as e:
        kept = printer.abort()
        if isinstance(e, UserError) and kept is not None:
            raise UserError(f"{e} (the captions so far are in {kept}; {args.srt} was left as it was)") from None
        raise
    printer.close()
    if printer.summary and not args.json:
        s = printer.summary
        print(f"{s.get('segments')} segments, {s.get('audio_s')} s of audio, "
              f"mean latency {s.get('mean_latency_ms')} ms", file=sys.stderr)
    if printer.summary is None:
        if not printer.errors:
            print("simulsub client: the server closed the connection before its summary", file=sys.stderr)
        return 1
    return 0
