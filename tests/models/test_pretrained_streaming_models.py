"""The bundled FReTNA NAT and wait-k models: load without torch, translate validation text well."""

from __future__ import annotations

import json

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
