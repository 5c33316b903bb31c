"""The parts of ``serve --ray`` that need no cluster: the ASGI socket adapter, the remote translators' retries and
cache, the deployment plan and the error report."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from app.errors import UserError
from app.server.asgi_socket import AsgiSocket


class FakeAsgiWebSocket:
    """Starlette's accepted WebSocket as far as AsgiSocket uses it: queued ASGI receive messages, sent texts."""

    def __init__(self, incoming: list[dict[str, Any]]) -> None:
        self.incoming = list(incoming)
        self.sent: list[str] = []
        self.closed: list[tuple[int, str]] = []

    async def receive(self) -> dict[str, Any]:
        if not self.incoming:
            raise RuntimeError('Cannot call "receive" once a disconnect message has been received.')
        return self.incoming.pop(0)

    async def send_text(self, text: str) -> None:
        if self.closed:
            raise RuntimeError("Cannot call 'send' once a close message has been sent.")
        self.sent.append(text)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        if self.closed:
            raise RuntimeError("already closed")
        self.closed.append((code, reason or ""))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_asgi_socket_passes_text_and_bytes_and_reports_a_clean_close() -> None:
    ws = FakeAsgiWebSocket([{"type": "websocket.receive", "text": "{\"type\": \"start\"}"},
                            {"type": "websocket.receive", "bytes": b"\x01\x02"},
                            {"type": "websocket.disconnect", "code": 1000, "reason": "bye"}])
    sock = AsgiSocket(ws, max_message_bytes=1024)

    async def go() -> ConnectionClosed:
        assert await sock.recv() == "{\"type\": \"start\"}"
        assert await sock.recv() == b"\x01\x02"
        await sock.send("caption")
        pong = await sock.ping()
        assert await asyncio.wait_for(pong, 1) == 0.0  # the front server keeps the connection alive
        with pytest.raises(ConnectionClosed) as first:
            await sock.recv()
        with pytest.raises(ConnectionClosed) as again:  # and every later read says the same
            await sock.recv()
        assert again.value is first.value
        return first.value

    closed = run(go())
    assert closed.rcvd is not None and closed.rcvd.code == 1000 and closed.rcvd.reason == "bye"
    assert ws.sent == ["caption"]


@pytest.mark.parametrize("code", [1005, 1006, None])
def test_asgi_socket_reports_a_cut_connection_without_a_close_frame(code: int | None) -> None:
    msg: dict[str, Any] = {"type": "websocket.disconnect"}
    if code is not None:
        msg["code"] = code
    sock = AsgiSocket(FakeAsgiWebSocket([msg]), max_message_bytes=1024)
    with pytest.raises(ConnectionClosed) as e:
        run(sock.recv())
    assert e.value.rcvd is None  # Connection reads this as "cut": the slot is freed at once


def test_asgi_socket_refuses_an_oversized_message_with_1009_and_a_json_reason() -> None:
    ws = FakeAsgiWebSocket([{"type": "websocket.receive", "bytes": b"x" * 2000}])
    sock = AsgiSocket(ws, max_message_bytes=1024)
    with pytest.raises(ConnectionClosed) as e:
        run(sock.recv())
    assert e.value.rcvd is None and e.value.sent is not None and e.value.sent.code == CloseCode.MESSAGE_TOO_BIG
    (code, reason), = ws.closed
    assert code == 1009 and json.loads(reason)["code"] == "message_too_big"
    with pytest.raises(ConnectionClosed):  # nothing is sent after the close
        run(sock.send("late"))


def test_asgi_socket_close_is_idempotent_and_survives_a_gone_client() -> None:
    ws = FakeAsgiWebSocket([])
    sock = AsgiSocket(ws, max_message_bytes=1024)

    async def go() -> None:
        await sock.close(1000, "done")
        await sock.close(1000, "done")  # the second close meets a closed socket: no error
        with pytest.raises(ConnectionClosed):
            await sock.recv()

    run(go())
    assert ws.closed == [(1000, "done")]


# -- the Ray side (needs the ray package, not a cluster) --------------------------------------------------------
ray_serve = pytest.importorskip("app.server.ray_serve", reason="Ray Serve is installed by make setup")


class FakeResponse:
    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome

    def result(self) -> Any:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


class FakeHandle:
    """A deployment handle whose ``call.remote`` answers from a script of outcomes (results or exceptions)."""

    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[Any, ...]] = []
        self.call = self

    def remote(self, *args: Any) -> FakeResponse:
        self.calls.append(args)
        return FakeResponse(self.outcomes.pop(0))


def test_a_translation_call_is_sent_again_while_its_replica_is_dead(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray.exceptions import ActorDiedError

    monkeypatch.setattr(ray_serve.time, "sleep", lambda s: None)
    handle = FakeHandle([ActorDiedError(), ActorDiedError(), "Ein Mann."])
    remote = ray_serve.RemoteTranslator(handle, ("ct2", None), b"loader")
    assert remote.translate_sentence("A man .", beam_size=1) == "Ein Mann."
    assert remote.retries == 2 and len(handle.calls) == 3
    key, blob, method, args, kwargs = handle.calls[-1]
    assert (key, blob, method, args) == (("ct2", None), b"loader", "translate_sentence", ("A man .",))
    assert kwargs == {"beam_size": 1, "target_prefix": "", "prefix_bias_beta": 0.0}


def test_a_model_error_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    handle = FakeHandle([ValueError("bad input")])
    remote = ray_serve.RemoteTranslator(handle, ("ct2", None), b"")
    with pytest.raises(ValueError, match="bad input"):
        remote.continue_prefix("A man", "Ein")
    assert remote.retries == 0


def test_retries_end_after_the_retry_window(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray.exceptions import ActorUnavailableError

    clock = iter(range(0, 10_000, 50))
    monkeypatch.setattr(ray_serve.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(ray_serve.time, "sleep", lambda s: None)
    handle = FakeHandle([ActorUnavailableError("gone", None)] * 10)
    with pytest.raises(ActorUnavailableError):
        ray_serve.RemoteTranslator(handle, ("nat",), b"").translate_sentence("x")
    assert 1 < len(handle.calls) < 10


def test_remote_cache_stands_in_for_sentence_translators_only() -> None:
    handle = FakeHandle([None])  # the eager load of the one remote model
    cache = ray_serve.RemoteModelCache(handle)
    remote = cache.get(("ct2", "dir", 1, "cpu", None, None), lambda: pytest.fail("loaded in the ingress"))
    assert isinstance(remote, ray_serve.RemoteTranslator)
    assert cache.get(("ct2", "dir", 1, "cpu", None, None), lambda: None) is remote  # one stand-in per key
    assert handle.calls[0][2] == "load"
    local = object()
    assert cache.get(("llm", "dir"), lambda: local) is local  # stateful models stay in the session's replica
    assert cache.values() == [remote, local]


def test_the_stage_loads_a_model_from_the_callers_loader_and_refuses_other_methods() -> None:
    from ray import cloudpickle

    class Echo:
        def translate_sentence(self, source: str, **kw: Any) -> str:
            return source.upper()

    stage = ray_serve.TranslationStage(None)
    blob = cloudpickle.dumps(lambda: Echo())
    assert stage._run(("nat",), blob, "translate_sentence", ("ein mann",), {}) == "EIN MANN"
    assert stage._run(("nat",), blob, "load", (), {}) is None
    with pytest.raises(ValueError, match="no method"):
        stage._run(("nat",), blob, "__class__", (), {})


def test_plan_checks_and_scaling_options() -> None:
    plan = ray_serve.RayPlan(ingress_replicas=2, translation_replicas=1)
    assert plan.scaling(2, 6.0) == {"num_replicas": 2}
    auto = ray_serve.RayPlan(ingress_replicas=1, translation_replicas=1, max_replicas=4)
    assert auto.scaling(1, 6.0) == {"autoscaling_config": {"min_replicas": 1, "max_replicas": 4,
                                                          "target_ongoing_requests": 6.0, **ray_serve.AUTOSCALING}}
    with pytest.raises(UserError, match="--max-replicas"):
        ray_serve.RayPlan(ingress_replicas=3, max_replicas=2)
    with pytest.raises(UserError, match="--replicas"):
        ray_serve.RayPlan(ingress_replicas=0)


def test_a_failed_deployment_is_reported_by_its_cause() -> None:
    report = ("Deploying application simulsub failed: Failed to update the deployments ['CaptionIngress'].\n"
              "Traceback (most recent call last):\n  File \"x.py\", line 1\n"
              "app.errors.UserError: NAT model directory /x does not exist\n")
    assert ray_serve.deploy_error(report) == "NAT model directory /x does not exist"
    assert ray_serve.deploy_error("something odd") == "something odd"


def test_serve_ray_options_are_checked_before_any_cluster(capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from app.cli import main

    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # serve --ray would set it for Ray; keep this process's as it was

    assert main(["serve", "--ray", "--procs", "2"]) == 2
    assert "exclude each other" in capsys.readouterr().err
    assert main(["serve", "--ray", "--max-replicas", "1", "--replicas", "2"]) == 2
    assert "--max-replicas" in capsys.readouterr().err
