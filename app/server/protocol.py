"""The WebSocket protocol's client messages: parsing and validation (see ``docs/protocol.md``).

Client → server: a JSON ``start`` message, then binary frames of 16-bit little-endian mono PCM (or, with
``"input": "text"``, JSON ``text`` messages), then ``{"type": "stop"}``. Server → client: JSON messages of type
``partial``, ``final``, ``error`` (with a ``code``) and ``summary``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.policies import LATENCY_LEVELS, POLICY_NAMES

SUPPORTED_PAIRS = {("en", "de")}
MIN_RATE, MAX_RATE = 8000, 48000


class ProtocolError(ValueError):
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


def error_message(code: str, message: str) -> dict[str, object]:
    return {"type": "error", "code": code, "message": message}


def decode_json(text: str) -> dict[str, Any]:
    """A JSON object with a string ``type``; ProtocolError otherwise."""
    try:
        msg = json.loads(text)
    except ValueError as e:
        raise ProtocolError("bad_json", f"not JSON: {e}") from None
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


def parse_start(msg: dict[str, Any]) -> StartRequest:
    """Validate a ``start`` message."""
    if msg.get("type") != "start":
        raise ProtocolError("expected_start", "the first message must be {\"type\": \"start\", ...}")
    known = {"type", "sample_rate", "input", "policy", "source_lang", "target_lang", "mask_k", "k", "beam",
             "latency"}
    unknown = sorted(set(msg) - known)
    if unknown:
        raise ProtocolError("bad_start", f"unknown field(s) in start: {', '.join(unknown)}")
    rate = _int(msg, "sample_rate", MIN_RATE, MAX_RATE)
    if rate is None:
        raise ProtocolError("bad_start", "'sample_rate' is required (Hz of the PCM frames, e.g. 16000)")
    source_input = msg.get("input", "audio")
    if source_input not in ("audio", "text"):
        raise ProtocolError("bad_start", "'input' must be 'audio' or 'text'")
    policy = msg.get("policy")
    if policy is not None and policy not in POLICY_NAMES:
        raise ProtocolError("bad_start", f"'policy' must be one of {', '.join(POLICY_NAMES)}")
    latency = msg.get("latency")
    if latency is not None and latency not in LATENCY_LEVELS:
        raise ProtocolError("bad_start", f"'latency' must be one of {', '.join(LATENCY_LEVELS)}")
    src, tgt = msg.get("source_lang", "en"), msg.get("target_lang", "de")
    if (src, tgt) not in SUPPORTED_PAIRS:
        pairs = ", ".join(f"{a}→{b}" for a, b in sorted(SUPPORTED_PAIRS))
        raise ProtocolError("unsupported_language", f"{src}→{tgt} is not served here (available: {pairs})")
    return StartRequest(sample_rate=rate, input=source_input, policy=policy, source_lang=src, target_lang=tgt,
                        mask_k=_int(msg, "mask_k", 0, 20), k=_int(msg, "k", 1, 30), beam=_int(msg, "beam", 1, 16),
                        latency=latency)
