"""``simulsub serve --ray``: the caption server as a Ray Serve application, scaled out over replicas and machines.

Two deployments, split where a session's state ends:

- ``CaptionIngress`` (FastAPI WebSocket ingress behind Ray Serve's proxy): the same protocol, the same
  :class:`app.server.connection.Connection` and :class:`app.server.session.StreamSession` as ``simulsub serve``
  (:mod:`app.server.asgi_socket` adapts the ASGI socket). A session's streaming state (VAD, the streaming ASR's
  caches, the policy) lives in the replica that accepted it, from ``start`` to ``summary``; each replica holds at
  most ``--max-sessions`` of them and runs their model work on its own fair scheduler.
- ``TranslationStage``: the sentence translation models (CTranslate2 for reta and test-time wait-k, the NAT for
  fretna) that every session calls, stateless between calls, so any replica may answer any call. With
  ``--batching on`` a replica runs the calls of all sessions (of every ingress replica) as shared batches
  (:mod:`app.batching`: the same translations as alone).

Failures: a translation replica that dies mid-stream costs its sessions nothing but a delay: the call is sent
again (to another replica, or to the one Serve starts in its place) and gives the same translation, so the
captions are those of an undisturbed run. An ingress replica that dies takes its sessions' connections with it
(the client sees the connection drop, code 1006); every final already sent is on disk in the sessions directory
(persisted as it happens), and Serve replaces the replica for new sessions.

Start (loopback; see docs/protocol.md)::

    ray start --head --node-ip-address 127.0.0.1 --port 6379 --include-dashboard false
    simulsub serve --ray --ray-address 127.0.0.1:6379 --port 8765 --replicas 2 --translation-replicas 2

``--ray-address local`` starts a private one-machine cluster for the life of the command instead.
"""

# no ``from __future__ import annotations``: FastAPI reads the route handlers' annotations at run time
import argparse
import asyncio
import logging
import math
import re
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI, WebSocket
from ray import cloudpickle, serve
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError
from starlette.responses import PlainTextResponse, Response

from app.batching import BatchedTranslator, BatchingOptions
from app.errors import UserError
from app.policies import ModelCache
from app.server.asgi_socket import AsgiSocket
from app.server.connection import Connection
from app.server.server import SUBPROTOCOL, CaptionServer, ServerOptions, handshake_refusal, static_response
from app.speech_session import SpeechConfig, SpeechModels

logger = logging.getLogger(__name__)

APP_NAME = "simulsub"
REMOTE_KINDS = ("ct2", "nat")  # ModelCache key kinds served by the translation stage (stateless sentence models)
REMOTE_METHODS = frozenset({"translate_sentence", "continue_prefix"})
RETRY_S = 120.0  # how long a translation call is retried while its replicas are dead or being replaced
RETRYABLE = (ActorDiedError, ActorUnavailableError, RayActorError, BackPressureError, DeploymentUnavailableError,
             ReplicaUnavailableError)
STAGE_THREADS = 64  # translation calls a stage replica runs at once (each waits in a batch or computes)


AUTOSCALING = {"upscale_delay_s": 5.0, "look_back_period_s": 10.0, "downscale_delay_s": 600.0}
"""Sessions last minutes to hours: add a replica within seconds of a rise, remove one only after 10 minutes of
less load (a removed ingress replica ends its remaining sessions after ``INGRESS_DRAIN_S``)."""
INGRESS_DRAIN_S = 120.0  # a stopping ingress replica takes no new sessions and waits this long for its own to end


@dataclass(frozen=True)
class RayPlan:
    """How the application is laid out: replicas per deployment (``max_replicas`` > 0: each autoscales between its
    count and that), logical CPUs each replica asks Ray for, batching in the translation stage."""

    ingress_replicas: int = 1
    translation_replicas: int = 1
    max_replicas: int = 0
    ingress_cpus: float = 1.0
    translation_cpus: float = 0.5
    batching: BatchingOptions | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.ingress_replicas <= 256 or not 1 <= self.translation_replicas <= 256:
            raise UserError("--replicas and --translation-replicas must be 1..256")
        if self.max_replicas and self.max_replicas < max(self.ingress_replicas, self.translation_replicas):
            raise UserError("--max-replicas must be 0 (fixed counts) or at least --replicas and "
                            "--translation-replicas")
        if self.ingress_cpus < 0 or self.translation_cpus < 0:
            raise UserError("replica CPUs must be >= 0")

    def scaling(self, replicas: int, target_ongoing: float) -> dict[str, Any]:
        """Deployment options: a fixed replica count, or autoscaling on ongoing requests (sessions or calls)."""
        if not self.max_replicas:
            return {"num_replicas": replicas}
        return {"autoscaling_config": {"min_replicas": replicas, "max_replicas": self.max_replicas,
                                       "target_ongoing_requests": target_ongoing, **AUTOSCALING}}


# -- the ingress side: translation models that live in the translation stage ----------------------------------
class RemoteTranslator:
    """A sentence translator in the ``TranslationStage`` deployment, called like the local model (same results):
    ``translate_sentence`` and ``continue_prefix``. Calls block the calling (session) thread; a call whose replica
    died is sent again until ``RETRY_S`` has passed."""

    def __init__(self, handle: Any, key: tuple[object, ...], load_blob: bytes) -> None:
        self.handle = handle
        self.key = key
        self.load_blob = load_blob  # cloudpickled ``load()``: a replica that never saw the model loads it
        self.retries = 0

    def translate_sentence(self, source: str, *, beam_size: int = 4, target_prefix: str = "",
                           prefix_bias_beta: float = 0.0) -> str:
        out: str = self._call("translate_sentence", (source,), {
            "beam_size": beam_size, "target_prefix": target_prefix, "prefix_bias_beta": prefix_bias_beta})
        return out

    def continue_prefix(self, source: str, target_prefix: str, *, beam_size: int = 1,
                        max_new_tokens: int = 8) -> tuple[str, bool]:
        text, ended = self._call("continue_prefix", (source, target_prefix), {
            "beam_size": beam_size, "max_new_tokens": max_new_tokens})
        return str(text), bool(ended)

    def load(self) -> None:
        """Load the model in a replica now (its errors surface at startup, not in the first session)."""
        self._call("load", (), {})

    def _call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        deadline = time.monotonic() + RETRY_S
        attempt = 0
        while True:
            try:
                return self.handle.call.remote(self.key, self.load_blob, method, args, kwargs).result()
            except RETRYABLE as e:
                if time.monotonic() > deadline:
                    raise
                attempt += 1
                self.retries += 1
                logger.warning("translation call %s failed (%s); retrying (attempt %d)", method,
                               type(e).__name__, attempt)
                time.sleep(min(0.05 * 2 ** attempt, 1.0))


class RemoteModelCache(ModelCache):
    """The ingress replicas' model cache: sentence translators (``REMOTE_KINDS``) become
    :class:`RemoteTranslator` stand-ins for the models in the translation stage; the stateful ones (the trained
    wait-k model, the LLM: each session forks its own state) are loaded here as usual."""

    def __init__(self, handle: Any) -> None:
        super().__init__()
        self.handle = handle
        self._remote: dict[tuple[object, ...], RemoteTranslator] = {}

    def get(self, key: tuple[object, ...], load: Callable[[], Any]) -> Any:
        if key[0] not in REMOTE_KINDS:
            return super().get(key, load)
        with self._lock:
            proxy = self._remote.get(key)
            if proxy is None:
                proxy = self._remote[key] = RemoteTranslator(self.handle, key, cloudpickle.dumps(load))
                proxy.load()
            return proxy

    def values(self) -> list[Any]:
        with self._lock:
            return [*self._remote.values(), *self._models.values()]


# -- the deployments ---------------------------------------------------------------------------------------------
def replica_logging() -> None:
    """This package's log records (INFO and up) into the replica's Serve log, beside Serve's own."""
    serve_logger = logging.getLogger("ray.serve")
    ours = logging.getLogger("app")
    ours.setLevel(logging.INFO)
    if serve_logger.handlers and not ours.handlers:
        for handler in serve_logger.handlers:
            ours.addHandler(handler)
        ours.propagate = False


class TranslationStage:
    """Sentence translation models by ``ModelCache`` key, loaded on first use (each call carries its loader)."""

    def __init__(self, batching: BatchingOptions | None) -> None:
        replica_logging()
        self.batching = batching
        self.cache = ModelCache(wrap=self._wrap if batching is not None else None)
        self.pool = ThreadPoolExecutor(STAGE_THREADS, thread_name_prefix="simulsub-mt")

    def _wrap(self, key: tuple[object, ...], model: Any) -> Any:
        return BatchedTranslator(model, self.batching) if key[0] == "ct2" else model

    def _model(self, key: tuple[object, ...], load_blob: bytes) -> Any:
        return self.cache.get(key, lambda: cloudpickle.loads(load_blob)())

    def _run(self, key: tuple[object, ...], load_blob: bytes, method: str, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
        if method != "load" and method not in REMOTE_METHODS:
            raise ValueError(f"the translation stage has no method {method!r}")
        model = self._model(key, load_blob)
        return None if method == "load" else getattr(model, method)(*args, **kwargs)

    async def call(self, key: tuple[object, ...], load_blob: bytes, method: str, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> Any:
        """``method(*args, **kwargs)`` of the model under ``key`` (``load``: only load it)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, self._run, key, load_blob, method, args, kwargs)


ingress_app = FastAPI(title="simulsub captions", docs_url=None, redoc_url=None, openapi_url=None)


class CaptionIngress:
    """The WebSocket protocol of docs/protocol.md and the caption pages, on ``/`` (routes of ``ingress_app``;
    deployed as ``CaptionIngressApp``)."""

    async def __init__(self, cfg: SpeechConfig, options: ServerOptions,  # type: ignore[misc]  # Serve awaits it
                       translation: Any) -> None:
        replica_logging()
        self.options = options
        # off the event loop: loading takes a while, and the translation model is loaded in the stage (a blocking
        # call, which Serve refuses on the loop)
        self.models = await asyncio.to_thread(SpeechModels, cfg, translators=RemoteModelCache(translation))
        self.server = CaptionServer(self.models, options)

    @ingress_app.websocket("/")
    async def captions(self, websocket: WebSocket) -> None:
        headers = websocket.headers
        path = websocket.url.path + (f"?{websocket.url.query}" if websocket.url.query else "")
        refusal = handshake_refusal(self.options, authorization=headers.get("authorization", ""),
                                    protocols=headers.getlist("sec-websocket-protocol"),
                                    origin=headers.get("origin"), path=path)
        if refusal is not None:
            status, text = refusal
            logger.info("handshake refused (%d): %s", status, text.strip())
            if "websocket.http.response" in (websocket.scope.get("extensions") or {}):
                await websocket.send_denial_response(PlainTextResponse(text, status_code=int(status)))
            else:
                await websocket.close(1008)  # the front server answers HTTP 403
            return
        offered = websocket.scope.get("subprotocols") or []
        await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        await Connection(self.server, AsgiSocket(websocket, max_message_bytes=self.options.max_message_bytes)).run()

    @ingress_app.get("/{name:path}")
    async def page(self, name: str) -> Response:
        """The caption pages of ``web/static`` (``/`` is ``index.html``); 404 for anything else."""
        r = static_response("/" + name, self.server.static)
        return Response(r.body, status_code=r.status_code,
                        headers={k: v for k, v in r.headers.raw_items() if k.lower() != "content-length"})

    def __del__(self) -> None:
        server = getattr(self, "server", None)
        if server is not None:
            server.scheduler.shutdown()


# at import time, in the driver and in every replica alike: the routes of ``ingress_app`` become methods of the
# class (a replica imports this module, so its ``ingress_app`` must be rewritten there too)
CaptionIngressApp = serve.ingress(ingress_app)(CaptionIngress)


# -- building and running the application ------------------------------------------------------------------------
def absolute_config(cfg: SpeechConfig, options: ServerOptions) -> tuple[SpeechConfig, ServerOptions]:
    """Paths made absolute: replicas may run in another working directory (or on another machine with the same
    checkout at the same place)."""

    def absolute(p: Path | None) -> Path | None:
        return p.resolve() if p is not None else None

    policy = replace(cfg.policy, model=absolute(cfg.policy.model), llm_model=absolute(cfg.policy.llm_model))
    return (replace(cfg, policy=policy, asr_model=absolute(cfg.asr_model)),
            replace(options, out_dir=absolute(options.out_dir)))


def build_app(cfg: SpeechConfig, options: ServerOptions, plan: RayPlan) -> Any:
    """The Serve application: the ingress (``options.max_sessions`` sessions per replica) bound to the
    translation stage."""
    cfg, options = absolute_config(cfg, options)
    stage = serve.deployment(name="TranslationStage")(TranslationStage).options(
        max_ongoing_requests=STAGE_THREADS, ray_actor_options={"num_cpus": plan.translation_cpus},
        **plan.scaling(plan.translation_replicas, STAGE_THREADS / 4),
    ).bind(plan.batching)
    ingress = serve.deployment(name="CaptionIngress")(CaptionIngressApp).options(
        max_ongoing_requests=options.max_sessions + options.max_pending,
        ray_actor_options={"num_cpus": plan.ingress_cpus}, graceful_shutdown_timeout_s=INGRESS_DRAIN_S,
        **plan.scaling(plan.ingress_replicas, max(1.0, 0.75 * options.max_sessions)),
    )
    return ingress.bind(cfg, options, stage)


def deploy_error(text: str) -> str:
    """The cause in a failed deployment's report (the last ``SomeError: message`` line of the replica's
    traceback), else its last line."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    causes = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception): ", ln)]
    return (causes[-1] if causes else lines[-1] if lines else "no details").split(": ", 1)[-1]


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _listening(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.25)
    return False


def serve_on_ray(args: argparse.Namespace, cfg: SpeechConfig, options: ServerOptions, plan: RayPlan) -> int:
    """Deploy on the cluster at ``args.ray_address``, announce, and keep the application until Ctrl-C or SIGTERM
    (then it is deleted; a cluster started here with ``local`` is shut down)."""
    import ray

    SpeechModels(cfg)  # load every model once here: a bad option or model fails now, as one line
    local = args.ray_address == "local"
    try:
        ray.init(address=args.ray_address, include_dashboard=False if local else None, log_to_driver=False,
                 num_cpus=max(2, math.ceil(plan.ingress_replicas * plan.ingress_cpus
                                           + plan.translation_replicas * plan.translation_cpus)) if local else None)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UserError(f"no Ray cluster at {args.ray_address!r} ({e}); start one with 'ray start --head "
                        "--node-ip-address 127.0.0.1' or pass --ray-address local") from None
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        serve.start(http_options={"host": options.host, "port": options.port})
        try:
            serve.run(build_app(cfg, options, plan), name=APP_NAME, route_prefix="/")
        except RuntimeError as e:
            raise UserError(f"the Ray Serve application failed to deploy: {deploy_error(str(e))}") from None
        if not _listening(options.host, options.port, 30.0):
            raise UserError(f"Ray Serve's proxy does not listen on {options.host}:{options.port}: Serve already runs "
                            "on this cluster with other HTTP options ('serve shutdown -y' first) or the port is taken")
        print(f"simulsub serve: Ray Serve app '{APP_NAME}' on ws://{options.host}:{options.port} "
              f"({plan.ingress_replicas} ingress, {plan.translation_replicas} translation replicas"
              f"{f', autoscaling to {plan.max_replicas}' if plan.max_replicas else ''}; Ctrl-C to remove it)",
              flush=True)
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        try:  # no new sessions; running ones get INGRESS_DRAIN_S to end (a second Ctrl-C: at once)
            serve.delete(APP_NAME)
            if local:
                serve.shutdown()
        except KeyboardInterrupt:
            logger.warning("stopped without waiting for the running sessions to end")
        except Exception as e:  # the cluster may be gone already
            logger.warning("could not remove the Ray Serve application: %s", e)
        ray.shutdown()
    return 0
