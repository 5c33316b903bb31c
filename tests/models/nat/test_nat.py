"""CTC NAT: collapse, Viterbi alignment, overfitting, ONNX parity (fp32), int8 run, runtime end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from models.ctc_alignment import ctc_viterbi_align  # noqa: E402
from models.marian.runtime import SourceTooLongError  # noqa: E402
from models.nat.model import (  # noqa: E402
    ModelConfig,
    NATModel,
    anneal_ratio,
    ctc_collapse,
    greedy_decode,
)
from models.nat.runtime import ModelDirError, NatTranslator, ctc_collapse_np  # noqa: E402
from tests.conftest import multi30k_lines  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from models.nat.export import convert
    from models.text.spm import train_joint_spm

    tmp = tmp_path_factory.mktemp("nat")
    en = multi30k_lines("train.en", 300)
    de = multi30k_lines("train.de", 300)
    spm_path = train_joint_spm(en + de, tmp / "spm", vocab_size=200)
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=200,
        d_model=32,
        heads=2,
        ffn_dim=64,
        encoder_layers=1,
        decoder_layers=1,
        upsample=3,
        dropout=0.0,
        max_positions=192,
    )
    model = NATModel(cfg).eval()
    out = convert(model, spm_path, tmp / "export", quantization="int8")
    return {"model": model, "cfg": cfg, "spm": spm_path, "dir": out, "en": en, "de": de}


def test_ctc_collapse() -> None:
    assert ctc_collapse([5, 5, 9, 3, 3, 9, 3, 9, 9], blank=9) == [5, 3, 3]
    assert ctc_collapse([9, 9], blank=9) == []
    assert ctc_collapse([], blank=9) == []
    assert ctc_collapse_np(np.array([5, 5, 9, 3, 3, 9, 3, 9, 9]), 9).tolist() == [5, 3, 3]
    assert ctc_collapse_np(np.array([], dtype=np.int64), 9).tolist() == []


def test_viterbi_alignment_known_path() -> None:
    blank = 3
    # frames prefer 1, 1, blank, 2 → best path of target [1, 2] is exactly that
    p = np.full((4, 4), 0.05)
    for t, c in enumerate([1, 1, 3, 2]):
        p[t, c] = 0.85
    logp = torch.tensor(np.log(p / p.sum(1, keepdims=True)), dtype=torch.float32)
    # row 2: target [2, 2] needs a blank between the repeats; frames prefer 2, blank, 2, 2(padding frame ignored)
    q = np.full((4, 4), 0.05)
    for t, c in enumerate([2, 3, 2, 0]):
        q[t, c] = 0.85
    logq = torch.tensor(np.log(q / q.sum(1, keepdims=True)), dtype=torch.float32)
    batch = torch.stack([logp, logq])
    tgt = torch.tensor([[1, 2], [2, 2]])
    aligned, ok = ctc_viterbi_align(batch, tgt, torch.tensor([4, 3]), torch.tensor([2, 2]), blank)
    assert ok.tolist() == [True, True]
    assert aligned[0].tolist() == [1, 1, 3, 2]
    assert aligned[1].tolist() == [2, 3, 2, 3]  # last frame is past in_lens → blank
    # infeasible: [2, 2] in 2 frames
    _, ok2 = ctc_viterbi_align(batch[:, :2], tgt, torch.tensor([2, 2]), torch.tensor([2, 2]), blank)
    assert ok2.tolist() == [True, False]


def _batch(sp_path: Path, en: list[str], de: list[str], cfg: ModelConfig) -> tuple[Any, Any, Any]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(sp_path))
    srcs = [[*sp.encode(s), 1] for s in en]
    tgts = [sp.encode(t) for t in de]
    s_max, t_max = max(map(len, srcs)), max(map(len, tgts))
    src = torch.full((len(srcs), s_max), cfg.pad_id, dtype=torch.long)
    tgt = torch.zeros((len(tgts), t_max), dtype=torch.long)
    for i, (s, t) in enumerate(zip(srcs, tgts, strict=True)):
        src[i, : len(s)] = torch.tensor(s)
        tgt[i, : len(t)] = torch.tensor(t)
    return src, tgt, torch.tensor([len(t) for t in tgts])


def test_overfit_loss_decreases(tiny: dict[str, Any]) -> None:
    cfg = tiny["cfg"]
    torch.manual_seed(1)
    model = NATModel(cfg).train()
    src, tgt, lens = _batch(tiny["spm"], tiny["en"][:8], tiny["de"][:8], cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(30):
        loss = model.loss(src, tgt, lens, glance_ratio=anneal_ratio(step, 30))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
    decoded = greedy_decode(model.eval(), src)
    assert len(decoded) == 8


def _ort(path: Path) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def test_onnx_fp32_matches_torch(tiny: dict[str, Any]) -> None:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tiny["spm"]))
    sess = _ort(tiny["dir"] / "model.onnx")
    cfg = tiny["cfg"]
    everything = np.arange(cfg.num_classes, dtype=np.int64)
    some = np.array([3, 7, 11, 40, 41, 99, 150, cfg.blank_id], dtype=np.int64)  # a shortlist
    for s in [*tiny["en"][:5], "a", ""]:
        ids = [*sp.encode(s), 1]
        src = torch.tensor([ids])
        with torch.no_grad():
            logits = tiny["model"](src)
        (got,) = sess.run(["tokens"], {"src_ids": src.numpy(), "vocab_ids": everything})
        assert got.dtype == np.int64 and got.shape == (1, len(ids) * cfg.upsample)
        np.testing.assert_array_equal(got, logits.argmax(-1).numpy())
        (short,) = sess.run(["tokens"], {"src_ids": src.numpy(), "vocab_ids": some})
        want = some[logits[0][:, torch.from_numpy(some)].argmax(-1).numpy()]
        np.testing.assert_array_equal(short[0], want)


def test_post_norm_variant_exports_and_matches(tmp_path: Path, tiny: dict[str, Any]) -> None:
    from dataclasses import replace

    from models.nat.export import convert

    cfg = replace(tiny["cfg"], norm_first=False, position_layout="halves")
    torch.manual_seed(2)
    model = NATModel(cfg).eval()
    out = convert(model, tiny["spm"], tmp_path / "post", quantization=None)
    sess = _ort(out / "model.onnx")
    src = torch.tensor([[12, 40, 7, 99, 1]])
    with torch.no_grad():
        ref = model(src).argmax(-1).numpy()
    (got,) = sess.run(["tokens"], {"src_ids": src.numpy(), "vocab_ids": np.arange(cfg.num_classes)})
    np.testing.assert_array_equal(got, ref)


def test_int8_runs_valid_ids(tiny: dict[str, Any]) -> None:
    sess = _ort(tiny["dir"] / "model_int8.onnx")
    vocab = np.arange(tiny["cfg"].num_classes, dtype=np.int64)
    (got,) = sess.run(["tokens"], {"src_ids": np.array([[10, 20, 30, 1]], dtype=np.int64), "vocab_ids": vocab})
    assert got.shape == (1, 12)
    assert got.min() >= 0 and got.max() <= tiny["cfg"].blank_id


def test_translator_end_to_end(tiny: dict[str, Any]) -> None:
    for quantized in (True, False):
        tr = NatTranslator(tiny["dir"], quantized=quantized, threads=1)
        outs = tr.translate(tiny["en"][:3])
        assert len(outs) == 3 and all(isinstance(o, str) for o in outs)
        assert tr.translate_sentence("   ") == ""
        assert tr.translate_sentence("a dog", beam_size=4, target_prefix="ein") == tr.translate_sentence("a dog")
    with pytest.raises(SourceTooLongError):
        tr.translate_sentence(" ".join(["dog"] * 200))


def test_bad_model_dir(tmp_path: Path, tiny: dict[str, Any]) -> None:
    with pytest.raises(ModelDirError):
        NatTranslator(tmp_path / "nope")
    with pytest.raises(ModelDirError, match="missing"):
        NatTranslator(tmp_path)
    (tmp_path / "model_int8.onnx").write_bytes(b"not onnx")
    (tmp_path / "source.spm").write_bytes(Path(tiny["spm"]).read_bytes())
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelDirError, match="config"):
        NatTranslator(tmp_path)
    (tmp_path / "config.json").write_text((tiny["dir"] / "config.json").read_text())
    with pytest.raises(ModelDirError, match="cannot load"):
        NatTranslator(tmp_path)


def test_viterbi_matches_brute_force() -> None:
    import itertools

    gen = torch.Generator().manual_seed(3)
    blank, t_len = 3, 5
    tgts = torch.tensor([[1, 1], [2, 0], [0, 0]])
    lens = torch.tensor([2, 2, 1])
    logp = torch.randn(3, t_len, 4, generator=gen).log_softmax(-1)
    aligned, ok = ctc_viterbi_align(logp, tgts, torch.tensor([5, 4, 5]), lens, blank)
    for b in range(3):
        n = [5, 4, 5][b]
        want = tgts[b, : lens[b]].tolist()
        best = max(
            sum(float(logp[b, t, c]) for t, c in enumerate(path))
            for path in itertools.product(range(4), repeat=n)
            if ctc_collapse(list(path), blank) == want
        )
        got = aligned[b, :n].tolist()
        assert ok[b] and ctc_collapse(got, blank) == want
        assert sum(float(logp[b, t, c]) for t, c in enumerate(got)) == pytest.approx(best, abs=1e-5)


def test_fretna_replay_text_through_the_cli(
    tiny: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from app.cli import main

    src = tmp_path / "src.en"
    ref = tmp_path / "ref.de"
    src.write_text("A man walks down the street.\nTwo dogs play in the snow.\n", encoding="utf-8")
    ref.write_text("Ein Mann geht die Straße entlang.\nZwei Hunde spielen im Schnee.\n", encoding="utf-8")
    log = tmp_path / "f.jsonl"
    code = main(["replay-text", "--source", str(src), "--reference", str(ref), "--policy", "fretna",
                 "--model", str(tiny["dir"]), "--mask-k", "1", "--log", str(log), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["n"] == 2
    rows = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()]
    assert [r["updates"] for r in rows] == [7, 7]  # one NAT pass per source word, plus finish
    code = main(["replay-text", "--source", str(src), "--policy", "fretna", "--model", str(tmp_path / "none")])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_refinement_passes_export_and_match_torch(tmp_path: Path, tiny: dict[str, Any]) -> None:
    from models.nat.export import convert

    model, cfg = tiny["model"], tiny["cfg"]
    out = convert(model, tiny["spm"], tmp_path / "refine", quantization=None, refinements=2)
    sess = _ort(out / "model.onnx")
    vocab = np.arange(cfg.num_classes, dtype=np.int64)
    src = torch.tensor([[12, 40, 7, 99, 1]])
    with torch.no_grad():
        want = torch.matmul(model.states(src, refinements=2), model.embed.weight[: cfg.num_classes].t()).argmax(-1)
        with_none = model.states(src, refinements=0)
    (got,) = sess.run(["tokens"], {"src_ids": src.numpy(), "vocab_ids": vocab})
    np.testing.assert_array_equal(got, want.numpy())
    torch.testing.assert_close(with_none, model.states(src))
    assert NatTranslator(out, quantized=False).translate_sentence("a dog") is not None


def test_translate_command_accepts_a_nat_directory(tiny: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from app.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("A man walks.\nTwo dogs play.\n"))
    assert main(["translate", "--model", str(tiny["dir"])]) == 0
    out = capsys.readouterr().out.splitlines()
    want = NatTranslator(tiny["dir"]).translate(["A man walks.", "Two dogs play."])
    assert out == want
