"""The bundled FReTNA NAT and wait-k models: load without torch, translate validation text well."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.profiles import DEFAULT_NAT_MODEL, DEFAULT_WAITK_MODEL
from streaming.metrics.quality import corpus_bleu
from streaming.types import SourceState
from tests.conftest import multi30k_lines

pytest.importorskip("onnxruntime")


def test_bundled_nat_one_pass_quality_and_shortlist() -> None:
    from models.nat.runtime import NatTranslator

    if not DEFAULT_NAT_MODEL.is_dir():
        pytest.skip("the NAT default is not bundled in this checkout")
    assert (DEFAULT_NAT_MODEL / "README.md").is_file() and (DEFAULT_NAT_MODEL / "shortlist.npz").is_file()
    src, ref = multi30k_lines("val.en", 80), multi30k_lines("val.de", 80)
    short = NatTranslator(DEFAULT_NAT_MODEL)
    full = NatTranslator(DEFAULT_NAT_MODEL, use_shortlist=False)
    hyp_short = short.translate(src)
    assert corpus_bleu(hyp_short, ref) > 28.0
    same = sum(a == b for a, b in zip(hyp_short, full.translate(src), strict=True))
    assert same >= 0.9 * len(src)  # the shortlist changes almost nothing
    assert short.translate_sentence("A dog runs.").split()[:2] == ["Ein", "Hund"]


def test_bundled_waitk_model_writes_monotonically() -> None:
    from models.waitk.runtime import WaitkOnnx
    from streaming.policies.waitk import WaitkPolicy

    if not DEFAULT_WAITK_MODEL.is_dir():
        pytest.skip("the wait-k default is not bundled in this checkout")
    cfg = json.loads((DEFAULT_WAITK_MODEL / "config.json").read_text())
    assert cfg["format"] == "simulsub-waitk" and (DEFAULT_WAITK_MODEL / "README.md").is_file()
    policy = WaitkPolicy(WaitkOnnx(DEFAULT_WAITK_MODEL), k=5)
    src, ref = multi30k_lines("val.en", 60), multi30k_lines("val.de", 60)
    hyps = []
    for sentence in src:
        policy.reset()
        words = tuple(sentence.split())
        prev: tuple[str, ...] = ()
        for i in range(1, len(words) + 1):
            out = policy.update(SourceState(words[:i], float(i), finished=i == len(words)))
            assert out.tokens[: len(prev)] == prev  # never a revision
            assert len(out.tokens) <= max(0, i - 5 + 1) or out.final  # never ahead of the schedule
            prev = out.tokens
        hyps.append(policy.finish().text)
    assert corpus_bleu(hyps, ref) > 25.0


def test_bundled_llm_runs_without_torch_and_waits_longer_at_higher_latency() -> None:
    from app.profiles import DEFAULT_LLM_MODEL
    from models.llm.loader import open_interleaved_lm
    from models.llm.onnx_runtime import OnnxInterleavedLM
    from streaming.policies.llm import LlmPolicy

    if not DEFAULT_LLM_MODEL.is_dir():
        pytest.skip("the LLM default is not bundled in this checkout")
    assert (DEFAULT_LLM_MODEL / "README.md").is_file() and not list(DEFAULT_LLM_MODEL.glob("*.safetensors"))
    lm = open_interleaved_lm(DEFAULT_LLM_MODEL)
    assert isinstance(lm, OnnxInterleavedLM)
    src, ref = multi30k_lines("val.en", 40), multi30k_lines("val.de", 40)
    first_write: dict[str, float] = {}
    for level in ("low", "high"):
        policy = LlmPolicy(lm.fork(), level)
        hyps, waits = [], []
        for s in src:
            policy.reset()
            words = tuple(s.split())
            wrote_at = None
            st = None
            for i in range(1, len(words) + 1):
                st = policy.update(SourceState(words[:i], float(i), finished=i == len(words)))
                if wrote_at is None and st.tokens:
                    wrote_at = i
            assert st is not None and st.final
            hyps.append(" ".join(st.tokens))
            waits.append(float(wrote_at or len(words)))
        assert corpus_bleu(hyps, ref) > (18.0 if level == "low" else 25.0)
        first_write[level] = sum(waits) / len(waits)
    assert first_write["high"] > first_write["low"] + 1.0  # the latency prompt is obeyed
    code = ("import sys\nfrom app.policies import PolicyConfig, build_policy\nfrom streaming.types import SourceState\n"
            "p = build_policy(PolicyConfig(name='llm', latency='low'))\n"
            "st = p.update(SourceState(('A', 'dog', 'runs', '.'), 4.0, finished=True))\n"
            "assert st.tokens and 'torch' not in sys.modules and 'transformers' not in sys.modules, sys.modules.keys()")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
