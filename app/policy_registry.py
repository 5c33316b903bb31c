"""The policy registry: every simultaneous policy by name, with its default config, builder and description.

Everything that lists or builds policies goes through here: the CLI's ``--policy`` choices, the server's ``start``
validation, the Gradio page, ``docs/protocol.schema.json`` (checked by ``tests/app/test_policy_registry.py``)
and :func:`app.policies.build_policy`.

Adding a policy is one :func:`register_policy` call (the built-in ones are registered at the end of
:mod:`app.policies`; put a new one beside them, or in a module that :mod:`app.policies` imports, so that it is
registered before any parser lists the choices)::

    def _build_verified(cfg: PolicyConfig, models: ModelCache) -> Policy:
        ...  # load (through ``models``, so sessions share it) and return a fresh policy for ``cfg``

    register_policy(PolicySpec(
        name="verified",
        description="...",
        builder=_build_verified,
        config=replace(PolicyConfig(), beam=1),  # optional: the policy's default options (name set for you)
        revises=True,  # optional: whether its captions' tails may change
    ))

The CLI, the server and the Gradio page pick it up from there; the one copy outside Python, the ``start.policy``
enum of ``docs/protocol.schema.json``, must be extended by hand (``tests/app/test_policy_registry.py`` fails
until it is). Variants of a policy's defaults are made with :func:`dataclasses.replace` (or
``policy_config("waitk", k=5)``), never by rebuilding a ``PolicyConfig`` field by field.
"""

from __future__ import annotations

import argparse
import importlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from app.errors import UserError
from streaming.policy import Policy

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass(frozen=True)
class PolicyConfig:
    """What a driver needs to build a policy; ``mask_k`` is also applied by the caption display."""

    name: str = "reta"
    model: Path | None = None
    beam: int = 4
    mask_k: int = 0
    prefix_bias: str = "off"
    prefix_beta: float = 0.2
    threads: int = 1
    k: int = 3
    shortlist: bool = True  # fretna: score only each source's lexical shortlist when the model has one
    device: str = "cpu"  # "cpu" or "cuda", already resolved (app.devices.resolve_device)
    latency: str = "medium"  # llm: the latency prompt (low, medium, high)
    llm_model: Path | None = None  # llm: a Hugging Face causal-LM directory (default: the bundled one)
    source_lang: str | None = None  # a multilingual (M2M100/NLLB) model's languages; None: the model's default
    target_lang: str | None = None


class ModelCache:
    """Loaded translation models by key; thread-safe."""

    def __init__(self, wrap: Callable[[tuple[object, ...], Any], Any] | None = None) -> None:
        """``wrap(key, model)``: what is stored instead of a freshly loaded model (e.g. a batching proxy)."""
        self._models: dict[tuple[object, ...], Any] = {}
        self._lock = threading.Lock()
        self.wrap = wrap

    def get(self, key: tuple[object, ...], load: Callable[[], Any]) -> Any:
        """The model stored under ``key``, loaded with ``load()`` the first time it is asked for."""
        with self._lock:
            if key not in self._models:
                model = load()
                self._models[key] = self.wrap(key, model) if self.wrap is not None else model
            return self._models[key]

    def values(self) -> list[Any]:
        """The stored models (proxies included), in loading order."""
        with self._lock:
            return list(self._models.values())

    def __len__(self) -> int:
        return len(self._models)


PolicyBuilder = Callable[[PolicyConfig, ModelCache], Policy]
"""A fresh policy for a config whose ``name`` is the builder's policy; models come from (and stay in) the cache."""


def _always(cfg: PolicyConfig) -> bool:
    return True


@dataclass(frozen=True)
class PolicySpec:
    """One registered policy.

    - ``name``: what ``--policy``, the server's ``start.policy`` and the page call it (lowercase, ``[a-z0-9_-]``).
    - ``description``: one line for help texts.
    - ``builder``: makes a fresh policy from a config (option checks that only concern this policy go there,
      raising :class:`UserError`).
    - ``config``: the policy's default options (``PolicyConfig`` defaults with ``name`` set when left out).
    - ``available``: whether the policy can run with a config's models (e.g. the LLM only when its directory
      is there); offered choices such as the Gradio page's are filtered by it.
    - ``revises``: whether its captions' tails may change (re-translation) or only grow (wait-k, LLM); a
      policy that never revises gets no ``mask_k`` from the page's latency knob.
    """

    name: str
    description: str
    builder: PolicyBuilder
    config: PolicyConfig = field(default_factory=PolicyConfig)
    available: Callable[[PolicyConfig], bool] = _always
    revises: bool = True

    def __post_init__(self) -> None:
        if self.config.name != self.name:
            object.__setattr__(self, "config", replace(self.config, name=self.name))


_REGISTRY: dict[str, PolicySpec] = {}
_LOCK = threading.Lock()


def register_policy(spec: PolicySpec, *, replace_existing: bool = False) -> PolicySpec:
    """Add ``spec`` to the registry (at the end of the listed names) and return it.

    Raises :class:`UserError` for a malformed name or one already registered (unless ``replace_existing``).
    """
    if not _NAME.match(spec.name):
        raise UserError(f"policy name {spec.name!r} must be lowercase letters, digits, '-' or '_' "
                        f"(registered: {', '.join(_REGISTRY) or 'none'})")
    with _LOCK:
        if spec.name in _REGISTRY and not replace_existing:
            raise UserError(f"policy {spec.name!r} is already registered (registered: {', '.join(_REGISTRY)})")
        _REGISTRY[spec.name] = spec
    return spec


def unregister_policy(name: str) -> None:
    """Remove a registered policy (tests and plugins that register temporarily); unknown names are an error."""
    get_policy(name)
    with _LOCK:
        del _REGISTRY[name]


def _ensure_builtins() -> None:
    """The built-in policies register themselves when :mod:`app.policies` is imported."""
    importlib.import_module("app.policies")


def policy_names() -> tuple[str, ...]:
    """Every registered policy name, in registration order (built-ins: reta, fretna, waitk, llm)."""
    _ensure_builtins()
    return tuple(_REGISTRY)


def get_policy(name: str) -> PolicySpec:
    """The registered policy called ``name``; :class:`UserError` listing the names when there is none."""
    _ensure_builtins()
    spec = _REGISTRY.get(name)
    if spec is None:
        raise UserError(f"unknown policy {name!r}; choose one of {', '.join(_REGISTRY)}")
    return spec


def policy_specs() -> tuple[PolicySpec, ...]:
    """Every registered policy, in registration order."""
    _ensure_builtins()
    return tuple(_REGISTRY.values())


def policy_config(name: str, **changes: Any) -> PolicyConfig:
    """``name``'s default config with ``changes`` applied (:func:`dataclasses.replace`)."""
    return replace(get_policy(name).config, **changes)


def available_policies(base: PolicyConfig) -> tuple[str, ...]:
    """The names of the policies that can run with ``base``'s models (see :attr:`PolicySpec.available`)."""
    return tuple(s.name for s in policy_specs() if s.available(base))


# argparse destination → PolicyConfig field, for the options a command may define (missing ones keep defaults)
_ARG_FIELDS: tuple[tuple[str, str], ...] = (
    ("beam", "beam"), ("mask_k", "mask_k"), ("prefix_bias", "prefix_bias"), ("prefix_beta", "prefix_beta"),
    ("threads", "threads"), ("k", "k"), ("latency", "latency"), ("source_lang", "source_lang"),
    ("target_lang", "target_lang"),
)


def policy_config_from_args(args: argparse.Namespace, *, device: str) -> PolicyConfig:
    """The config the parsed policy options ask for: ``--policy``'s defaults changed by the options the command
    defines (``--model``, ``--beam``, ``--mask-k``, ``--prefix-bias``, ``--prefix-beta``, ``--k``, ``--latency``,
    ``--llm-model``, ``--no-shortlist``, ``--threads``, ``--source-lang`` / ``--target-lang``); ``device``: the
    resolved compute device."""
    changes: dict[str, Any] = {f: getattr(args, a) for a, f in _ARG_FIELDS if hasattr(args, a)}
    changes["device"] = device
    for a in ("model", "llm_model"):  # a directory given on the command line; else the policy's default
        if getattr(args, a, None):
            changes[a] = Path(getattr(args, a))
    if hasattr(args, "no_shortlist"):
        changes["shortlist"] = not args.no_shortlist
    return policy_config(args.policy, **changes)
