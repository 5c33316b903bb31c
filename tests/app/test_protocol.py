"""The ``start`` message: defaults, every optional field, and the error code of each kind of bad value."""

from __future__ import annotations

import pytest

from app.server.protocol import ProtocolError, StartRequest, decode_json, parse_start


def test_minimal_and_full_start() -> None:
    assert parse_start({"type": "start", "sample_rate": 16000}) == StartRequest(sample_rate=16000)
    full = parse_start({"type": "start", "sample_rate": 48000, "input": "text", "policy": "llm", "latency": "high",
                        "source_lang": "en", "target_lang": "de", "mask_k": 2, "k": 5, "beam": 4})
    assert (full.policy, full.latency, full.input, full.k, full.beam, full.mask_k) == ("llm", "high", "text", 5, 4, 2)


@pytest.mark.parametrize(("msg", "code", "words"), [
    ({"type": "stop"}, "expected_start", "first message"),
    ({"type": "start"}, "bad_start", "sample_rate"),
    ({"type": "start", "sample_rate": 16000, "latency": "instant"}, "bad_start", "latency"),
    ({"type": "start", "sample_rate": 16000, "policy": "gpt"}, "bad_start", "policy"),
    ({"type": "start", "sample_rate": 16000, "k": 0}, "bad_start", "'k'"),
    ({"type": "start", "sample_rate": 16000, "beam": True}, "bad_start", "'beam'"),
    ({"type": "start", "sample_rate": 16000, "colour": "red"}, "bad_start", "colour"),
    ({"type": "start", "sample_rate": 16000, "target_lang": "fr"}, "unsupported_language", "en→fr"),
])
def test_bad_start_messages(msg: dict[str, object], code: str, words: str) -> None:
    with pytest.raises(ProtocolError) as e:
        parse_start(msg)
    assert e.value.code == code and words in str(e.value)


def test_decode_json_codes() -> None:
    with pytest.raises(ProtocolError) as e:
        decode_json("{nope")
    assert e.value.code == "bad_json"
    with pytest.raises(ProtocolError) as e:
        decode_json("[1, 2]")
    assert e.value.code == "bad_message"
