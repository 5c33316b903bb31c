"""The WebSocket protocol's client messages: parsing and validation (see ``docs/protocol.md``).

Client → server: a JSON ``start`` message, then binary frames of 16-bit little-endian mono PCM (or, with
``"input": "text"``, JSON ``text`` messages), then ``{"type": "stop"}``. Server → client: JSON messages of type
``partial``, ``final``, ``error`` (with a ``code``) and ``summary``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.policies import LATENCY_LEVELS, policy_names
from streaming.errors import InputFormatError

SUPPORTED_PAIRS = (("en", "de"),)  # the bundled models; a server over a multilingual model serves its own pair
MIN_RATE, MAX_RATE = 8000, 48000


class ProtocolError(InputFormatError):
    """A client message the server refuses; ``code`` goes into the ``error`` message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class StartRequest:
    """A validated ``start`` message (fields the client left out hold the server's defaults: None here)."""

    sample_rate: int
    input: str = "audio"
    policy: str | None = None
    source_lang: str = "en"
    target_lang: str = "de"
    mask_k: int | None = None
    k: int | None = None
    beam: int | None = None
    latency: str | None = None  # llm: low, medium or high


ERROR_CODES = ("bad_json", "bad_message", "expected_start", "bad_start", "unsupported_language", "wrong_input",
               "too_many_sessions", "session_too_long", "timeout", "message_too_big", "too_many_errors",
               "rate_limited", "text_too_long", "busy", "internal_error")
MAX_DEPTH = 4  # nesting of JSON containers in a client message (every valid message is flat: depth 1)
MAX_ECHO = 40  # characters of client-supplied text quoted back in an error message


def error_message(code: str, message: str) -> dict[str, object]:
    """An ``error`` message; ``message`` must already be safe to send (see :func:`echo`)."""
    return {"type": "error", "code": code, "message": message}


CLOSE_CODE_NAMES = {1002: "protocol_error", 1007: "invalid_data", 1008: "policy_violation",
                    1009: "message_too_big", 1011: "internal_error"}
MAX_CLOSE_REASON = 123  # bytes, RFC 6455


def close_reason(code: str, message: str = "") -> str:
    """A WebSocket close reason: compact JSON ``{"code": ..., "message": ...}`` within 123 UTF-8 bytes."""
    message = echo(message, 80)
    while True:
        reason = json.dumps({"code": code, "message": message}, separators=(",", ":"))
        if len(reason.encode("utf-8")) <= MAX_CLOSE_REASON or not message:
            return reason[:MAX_CLOSE_REASON]
        message = message[:-8]


def echo(value: object, limit: int = MAX_ECHO) -> str:
    """Client-supplied text quoted in an error message: ASCII-escaped (lone surrogates and control characters
    included) and cut to :data:`MAX_ECHO` characters, so it can always be encoded, logged and displayed."""
    text = ascii(value) if not isinstance(value, str) else ascii(value)[1:-1]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_values(value: Any, depth: int = 0) -> None:
    """Depth and encodability of a decoded JSON value: every string must be valid UTF-8 (JSON ``\\ud800``
    escapes decode to lone surrogates, which no tokenizer, log or socket accepts)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolError("bad_message", "strings must be valid Unicode (no lone surrogates)") from None
    elif isinstance(value, (list, dict)):
        if depth >= MAX_DEPTH:
            raise ProtocolError("bad_message", f"JSON nested deeper than {MAX_DEPTH} levels")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in items:
            _check_values(k, depth + 1)
            _check_values(v, depth + 1)


def decode_json(text: str) -> dict[str, Any]:
    """A JSON object with a string ``type``, nested at most :data:`MAX_DEPTH` deep, all strings valid Unicode;
    ProtocolError otherwise (never RecursionError or UnicodeError)."""
    try:
        msg = json.loads(text)
    except RecursionError:
        raise ProtocolError("bad_message", f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:
        raise ProtocolError("bad_json", f"not JSON: {echo(str(e))}") from None
    _check_values(msg)
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError("bad_message", "a message must be a JSON object with a string 'type'")
    return msg


def _int(msg: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    if key not in msg or msg[key] is None:
        return None
    v = msg[key]
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ProtocolError("bad_start", f"'{key}' must be an integer in {lo}..{hi}")
    return v


def _choice(msg: dict[str, Any], key: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    v = msg.get(key, default)
    if v is None:
        return None
    if not isinstance(v, str) or v not in allowed:
        raise ProtocolError("bad_start", f"'{key}' must be one of {', '.join(allowed)}")
    return v


def parse_start(msg: dict[str, Any], pairs: tuple[tuple[str, str], ...] = SUPPORTED_PAIRS) -> StartRequest:
    """Validate a ``start`` message (every field's type and value); ``pairs``: the (source, target) languages
    served, the first being the default of a start that names none."""
    if msg.get("type") != "start":
        raise ProtocolError("expected_start", "the first message must be {\"type\": \"start\", ...}")
    known = {"type", "sample_rate", "input", "policy", "source_lang", "target_lang", "mask_k", "k", "beam",
             "latency"}
    unknown = sorted(set(msg) - known)
    if unknown:
        raise ProtocolError("bad_start", f"unknown field(s) in start: {echo(', '.join(unknown))}")
    rate = _int(msg, "sample_rate", MIN_RATE, MAX_RATE)
    if rate is None:
        raise ProtocolError("bad_start", "'sample_rate' is required (Hz of the PCM frames, e.g. 16000)")
    source_input = _choice(msg, "input", ("audio", "text"), "audio")
    policy = _choice(msg, "policy", policy_names(), None)
    latency = _choice(msg, "latency", LATENCY_LEVELS, None)
    src, tgt = msg.get("source_lang", pairs[0][0]), msg.get("target_lang", pairs[0][1])
    if not isinstance(src, str) or not isinstance(tgt, str):
        raise ProtocolError("bad_start", "'source_lang' and 'target_lang' must be language codes (strings)")
    if (src, tgt) not in pairs:
        served = ", ".join(f"{a}→{b}" for a, b in pairs)
        raise ProtocolError("unsupported_language", f"{echo(src)}→{echo(tgt)} is not served here "
                                                    f"(available: {served})")
    return StartRequest(sample_rate=rate, input=source_input or "audio", policy=policy, source_lang=src,
                        target_lang=tgt, mask_k=_int(msg, "mask_k", 0, 20), k=_int(msg, "k", 1, 30),
                        beam=_int(msg, "beam", 1, 16), latency=latency)


def parse_session_message(msg: dict[str, Any]) -> str | None:
    """A message after ``start``: the words of a ``text`` message, or None for ``stop``."""
    kind = msg["type"]
    if kind == "stop":
        return None
    if kind != "text" or not isinstance(msg.get("text"), str):
        raise ProtocolError("bad_message", "expected binary PCM, {\"type\": \"text\", \"text\": ...} or "
                                           "{\"type\": \"stop\"}")
    return str(msg["text"])
