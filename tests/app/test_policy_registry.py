"""The policy registry: one list of names for the CLI, the server, the page and the JSON schema; clear errors;
every registered policy builds from its default config on the bundled models."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest

from app.errors import UserError
from app.policies import (
    POLICY_NAMES,
    ModelCache,
    PolicyConfig,
    PolicySpec,
    build_policy,
    get_policy,
    policy_config,
    policy_config_from_args,
    policy_names,
    register_policy,
)
from app.policy_registry import policy_specs, unregister_policy
from streaming.policy import Policy
from streaming.types import SourceState

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "protocol.schema.json"


def test_the_schema_lists_exactly_the_registered_policies() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["$defs"]["start"]["properties"]["policy"]["enum"] == list(policy_names())


def _policy_choices(parser: argparse.ArgumentParser) -> tuple[str, ...]:
    flag = next(a for a in parser._actions if "--policy" in a.option_strings)
    return tuple(flag.choices or ())


def test_the_built_ins_and_every_list_of_names_come_from_the_registry() -> None:
    from app.commands import client, replay_text
    from app.server.protocol import parse_start
    from app.speech_session import add_speech_arguments

    assert policy_names() == ("reta", "fretna", "waitk", "llm") == POLICY_NAMES
    assert [s.name for s in policy_specs() if s.revises] == ["reta", "fretna"]
    speech = argparse.ArgumentParser()
    add_speech_arguments(speech)  # replay, mic, serve and web
    assert _policy_choices(speech) == policy_names()
    for module in (replay_text, client):
        sub = argparse.ArgumentParser().add_subparsers()
        module.add_parser(sub)
        (parser,) = sub.choices.values()
        assert _policy_choices(parser) == policy_names(), module.__name__
    for name in policy_names():
        assert parse_start({"type": "start", "sample_rate": 16000, "policy": name}).policy == name


def test_unknown_names_and_bad_registrations_are_clear_user_errors() -> None:
    with pytest.raises(UserError, match=r"unknown policy 'gpt9'; choose one of reta, fretna, waitk, llm"):
        get_policy("gpt9")
    with pytest.raises(UserError, match=r"unknown policy 'gpt9'; choose one of reta, fretna, waitk, llm"):
        build_policy(PolicyConfig(name="gpt9"))
    with pytest.raises(UserError, match=r"already registered \(registered: reta, fretna, waitk, llm"):
        register_policy(PolicySpec("reta", "again", get_policy("reta").builder))
    with pytest.raises(UserError, match=r"must be lowercase.*registered: reta, fretna, waitk, llm"):
        register_policy(PolicySpec("Bad Name", "x", get_policy("reta").builder))
    with pytest.raises(UserError, match="unknown policy"):
        unregister_policy("gpt9")


def test_a_new_policy_is_one_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.server.protocol import parse_start
    from web.gradio_app import page_policies

    built: list[PolicyConfig] = []

    def build(cfg: PolicyConfig, models: ModelCache) -> Policy:
        built.append(cfg)
        return get_policy("waitk").builder(replace(cfg, name="waitk"), models)

    spec = register_policy(PolicySpec("verified-test", "a test policy", build, replace(PolicyConfig(), k=2)))
    try:
        assert spec.config.name == "verified-test" and spec.config.k == 2
        assert policy_names()[-1] == "verified-test" and "verified-test" in page_policies(PolicyConfig())
        assert parse_start({"type": "start", "sample_rate": 16000, "policy": "verified-test"}).policy
        build_policy(policy_config("verified-test", k=4))
        assert built[-1].k == 4 and built[-1].name == "verified-test"
    finally:
        unregister_policy("verified-test")
    assert "verified-test" not in policy_names()


def test_config_from_args_starts_from_the_policy_defaults() -> None:
    args = argparse.Namespace(policy="waitk", model="some/dir", beam=2, k=5, mask_k=1, prefix_bias="off",
                              threads=3, latency="low", llm_model=None, source_lang=None, target_lang="fr")
    cfg = policy_config_from_args(args, device="cpu")
    assert cfg == replace(get_policy("waitk").config, model=Path("some/dir"), beam=2, k=5, mask_k=1, threads=3,
                          latency="low", target_lang="fr")
    assert cfg.prefix_beta == 0.2 and cfg.shortlist  # options this command lacks keep their defaults
    no_shortlist = policy_config_from_args(argparse.Namespace(**vars(args), no_shortlist=True, prefix_beta=0.3),
                                           device="cuda")
    assert (no_shortlist.shortlist, no_shortlist.prefix_beta, no_shortlist.device) == (False, 0.3, "cuda")


@pytest.mark.parametrize("name", [s.name for s in policy_specs()])
def test_every_policy_builds_from_its_defaults_on_the_bundled_models(name: str) -> None:
    pytest.importorskip("onnxruntime")
    spec = get_policy(name)
    if not spec.available(spec.config):
        pytest.skip(f"{name}'s bundled model is not in this checkout")
    cache = ModelCache()
    policy = build_policy(spec.config, cache)
    assert isinstance(policy, Policy) and len(cache) == 1
    build_policy(spec.config, cache)
    assert len(cache) == 1  # the second policy shares the loaded model
    state = policy.update(SourceState(("A", "dog", "runs", "."), 4.0, finished=True))
    assert state.final and state.tokens
