"""The ``start`` message: defaults, every optional field, and the error code of each kind of bad value."""

from __future__ import annotations

import json

import pytest

from app.server.protocol import (
    ERROR_CODES,
    ProtocolError,
    StartRequest,
    close_reason,
    decode_json,
    echo,
    parse_session_message,
    parse_start,
)


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


@pytest.mark.parametrize(("raw", "code"), [
    ("[" * 1000 + "]" * 1000, "bad_message"),  # RecursionError in json before the fix
    ("[" * 100_000, "bad_message"),  # unterminated and deep
    ('{"type": "start", "a": [[[[[1]]]]]}', "bad_message"),
    ('{"type": "start", "\\ud800": 1}', "bad_message"),  # lone surrogate in a field name
    ('{"type": "text", "text": "caf\\udce9"}', "bad_message"),  # lone surrogate in text input
    ('{"type": "\\udfff"}', "bad_message"),
    ('{"type": 7}', "bad_message"),
    ("", "bad_json"),
    ("\x00", "bad_json"),
])
def test_hostile_json_is_a_protocol_error(raw: str, code: str) -> None:
    with pytest.raises(ProtocolError) as e:
        decode_json(raw)
    assert e.value.code == code
    str(e.value).encode("utf-8")  # the message itself is always sendable


@pytest.mark.parametrize("value", [["en"], {"en": 1}, 3, None, True, "\ud800"])
def test_language_fields_of_any_type(value: object) -> None:
    for key in ("source_lang", "target_lang"):
        with pytest.raises(ProtocolError) as e:
            parse_start({"type": "start", "sample_rate": 16000, key: value})
        assert e.value.code in ("bad_start", "unsupported_language")
        str(e.value).encode("utf-8")


@pytest.mark.parametrize("value", [["reta"], {"x": 1}, 3, "\ud800"])
def test_choice_fields_of_any_type(value: object) -> None:
    for key in ("policy", "input", "latency"):
        with pytest.raises(ProtocolError) as e:
            parse_start({"type": "start", "sample_rate": 16000, key: value})
        assert e.value.code == "bad_start"


def test_session_messages() -> None:
    assert parse_session_message({"type": "stop"}) is None
    assert parse_session_message({"type": "text", "text": "a b"}) == "a b"
    for bad in ({"type": "text"}, {"type": "text", "text": ["a"]}, {"type": "start", "sample_rate": 16000}):
        with pytest.raises(ProtocolError) as e:
            parse_session_message(bad)
        assert e.value.code == "bad_message"


def test_close_reasons_are_short_json_and_echo_is_safe() -> None:
    for message in ("", "x" * 500, "ü" * 300, "\ud800" * 50):
        reason = close_reason("too_many_errors", message)
        assert len(reason.encode("utf-8")) <= 123
        assert json.loads(reason)["code"] == "too_many_errors"
    assert echo("\ud800abc") == "\\ud800abc"
    assert len(echo("y" * 1000)) == 40 and echo(["a"]) == "['a']"


def test_the_schema_lists_every_error_code() -> None:
    from pathlib import Path

    schema = json.loads((Path(__file__).resolve().parents[3] / "docs" / "protocol.schema.json").read_text())
    text = json.dumps(schema)
    assert all(f'"{code}"' in text for code in ERROR_CODES)


def test_a_server_serves_the_pair_its_model_was_loaded_for() -> None:
    pairs = (("en", "fr"),)  # e.g. simulsub serve --model nllb-200-distilled-600M --target-lang fr
    req = parse_start({"type": "start", "sample_rate": 16000}, pairs)
    assert (req.source_lang, req.target_lang) == ("en", "fr")
    with pytest.raises(ProtocolError) as e:
        parse_start({"type": "start", "sample_rate": 16000, "target_lang": "de"}, pairs)
    assert e.value.code == "unsupported_language" and "en→fr" in str(e.value)
