"""wait-k model: training masks == incremental steps, ONNX == PyTorch, incremental == recomputed, schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from models.waitk.model import EOS_ID, FULL_SOURCE, WaitkConfig, WaitkModel, word_index  # noqa: E402
from models.waitk.torch_step import TorchIncremental  # noqa: E402
from streaming.policies.waitk import WaitkPolicy  # noqa: E402
from streaming.types import SourceState  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import sentencepiece as spm

    from models.text.spm import train_joint_spm
    from models.waitk.export import convert
    from tests.conftest import multi30k_lines

    tmp = tmp_path_factory.mktemp("waitk")
    en, de = multi30k_lines("train.en", 300), multi30k_lines("train.de", 300)
    sp_path = train_joint_spm(en + de, tmp / "spm", vocab_size=200)
    cfg = WaitkConfig(vocab_size=201, d_model=32, heads=2, ffn_dim=64, encoder_layers=2, decoder_layers=2,
                      dropout=0.0, max_positions=128)
    torch.manual_seed(0)
    model = WaitkModel(cfg).eval()
    out = convert(model, sp_path, tmp / "export", quantization="int8")
    return {"model": model, "cfg": cfg, "sp": spm.SentencePieceProcessor(model_file=str(sp_path)), "dir": out,
            "en": en, "de": de}


def test_word_index() -> None:
    assert word_index(["\u2581Ein", "\u2581gro", "ßer", "\u2581Hund", "."]) == [0, 1, 1, 2, 2]
    assert word_index(["x", "\u2581a", "b"]) == [0, 1, 1]


def test_incremental_steps_equal_the_teacher_forced_wait_k_forward(tiny: dict[str, Any]) -> None:
    from models.waitk.train import collate, make_example

    model, sp = tiny["model"], tiny["sp"]
    ex = make_example(sp, "A man in a blue shirt rides a bike .", "Ein Mann im blauen Hemd fährt Fahrrad .")
    b = collate([ex], tiny["cfg"].pad_id)
    n_words = int(b["n_words"][0])
    for k in (1, 3, FULL_SOURCE):
        with torch.no_grad():
            full = model(b["src"], b["src_word"], b["n_words"], b["tgt_in"], b["tgt_word"], k)[0]
        inc = TorchIncremental(model, sp)
        words_read = 0
        src_word = ex.src_word
        for i, (tok, tw) in enumerate(zip(b["tgt_in"][0].tolist(), ex.tgt_word, strict=True)):
            g = min(k + tw - 1, n_words)
            while words_read < g:  # read the tokens of the next word
                inc.read([t for t, w in zip(ex.src, src_word, strict=True) if w == words_read])
                words_read += 1
            if g >= n_words and inc.source_tokens < len(ex.src):
                inc.read([EOS_ID])
            logits = inc.propose(tok)
            inc.commit()
            np.testing.assert_allclose(logits, full[i].numpy(), atol=1e-4, rtol=1e-4, err_msg=f"k={k} label {i}")


class Recompute:
    """Non-incremental reference: re-encodes the source and re-decodes the whole target at every step."""

    def __init__(self, model: WaitkModel, sp: Any) -> None:
        ref = TorchIncremental(model, sp)
        self.model, self.sp = model, sp
        self.start_id, self.eos_id, self.pad_id = ref.start_id, ref.eos_id, ref.pad_id
        self.max_positions, self.word_start, self.sentence_end = ref.max_positions, ref.word_start, ref.sentence_end
        self.reset()

    def reset(self) -> None:
        self.src: list[int] = []
        self.fed: list[tuple[int, int]] = []  # (token, source tokens visible when it was fed)
        self.proposed: tuple[int, int] | None = None
        self.source_tokens = self.target_tokens = 0

    def word_ids(self, word: str) -> list[int]:
        return [int(i) for i in self.sp.encode(word, out_type=int)]

    def read(self, ids: list[int]) -> None:
        self.src += ids
        self.source_tokens = len(self.src)

    @torch.no_grad()
    def propose(self, token: int) -> np.ndarray:
        m = self.model
        enc = m.encode(torch.tensor([self.src]))
        fed = [*self.fed, (token, len(self.src))]
        x = m._inputs(torch.tensor([[t for t, _ in fed]]))
        visible = torch.tensor([c for _, c in fed])
        cross_allowed = (torch.arange(len(self.src))[None, :] < visible[:, None])[None, None]
        self_allowed = torch.ones(len(fed), len(fed), dtype=torch.bool).tril()[None, None]
        for layer in m.decoder:
            k, v = layer.self_attn.kv(x)
            ck, cv = layer.encoder_attn.kv(enc)
            x = layer(x, k, v, self_allowed, (ck, cv, cross_allowed))
        self.proposed = fed[-1]
        return m.logits(x)[0, -1].numpy()

    def commit(self) -> None:
        assert self.proposed is not None
        self.fed.append(self.proposed)
        self.proposed = None
        self.target_tokens += 1

    def decode(self, ids: list[int]) -> str:
        return str(self.sp.decode(ids))


def _run(policy: WaitkPolicy, sentence: str) -> list[tuple[str, ...]]:
    policy.reset()
    words = tuple(sentence.split())
    states = [policy.update(SourceState(words[:i], float(i), finished=i == len(words))).tokens
              for i in range(1, len(words) + 1)]
    return [*states, policy.finish().tokens]


def test_onnx_incremental_equals_torch_and_full_recomputation(tiny: dict[str, Any]) -> None:
    from models.waitk.runtime import WaitkOnnx

    onnx_fp32 = WaitkOnnx(tiny["dir"], quantized=False)
    backends = [onnx_fp32, TorchIncremental(tiny["model"], tiny["sp"]), Recompute(tiny["model"], tiny["sp"])]
    for sentence in tiny["en"][:4]:
        for k in (1, 3):
            runs = [_run(WaitkPolicy(b, k), sentence) for b in backends]  # type: ignore[arg-type]
            assert runs[0] == runs[1] == runs[2], (sentence, k)
    int8 = WaitkOnnx(tiny["dir"], quantized=True)
    out = _run(WaitkPolicy(int8, 2), tiny["en"][0])  # type: ignore[arg-type]
    assert out[-1] and all(isinstance(w, str) for w in out[-1])


class Scripted:
    """A fake model that writes a fixed token script, to check the read/write schedule."""

    def __init__(self) -> None:
        self.pieces = ["<unk>", "</s>", "\u2581Ein", "\u2581gro", "ßer", "\u2581Hund", ".", "<pad>"]
        self.start_id, self.eos_id, self.pad_id, self.max_positions = 7, 1, 7, 64
        self.word_start = np.array([p.startswith("\u2581") for p in self.pieces])
        self.sentence_end = np.array([p == "." for p in self.pieces])
        self.script = [2, 3, 4, 5, 6, 1]
        self.reset()

    def reset(self) -> None:
        self.read_words: list[str] = []
        self.source_tokens = self.target_tokens = 0
        self.committed = 0

    def word_ids(self, word: str) -> list[int]:
        return [0] if word != "</s>" else []

    def read(self, ids: list[int]) -> None:
        self.source_tokens += len(ids)
        self.read_words.append(str(ids))

    def propose(self, token: int) -> np.ndarray:
        logits = np.zeros(len(self.pieces), dtype=np.float32)
        logits[self.script[min(self.committed, len(self.script) - 1)]] = 10.0
        logits[0] = 5.0  # second best: what is picked while </s> is not allowed
        return logits

    def commit(self) -> None:
        self.committed += 1
        self.target_tokens += 1

    def decode(self, ids: list[int]) -> str:
        return "".join(self.pieces[i] for i in ids).replace("\u2581", " ")


def test_schedule_reads_words_writes_words_and_never_revises() -> None:
    fake = Scripted()
    policy = WaitkPolicy(fake, k=2)  # type: ignore[arg-type]
    src = ("A", "big", "dog", "barks", ".")
    outs = [policy.update(SourceState(src[:i], float(i))) for i in range(1, len(src) + 1)]
    # after g words read, max(0, g - k + 1) words written — until the model has said everything and
    # proposes </s> before the source ended: then it is not made to write (a stall) but reads on
    assert [len(o.tokens) for o in outs] == [0, 1, 2, 2, 2]  # "Hund" waits: is a full stop coming?
    assert outs[1].tokens == ("Ein",) and outs[2].tokens == ("Ein", "großer")
    assert outs[-1].tokens == ("Ein", "großer")  # no full stop before the source ends, "Hund" held back
    assert all(o.stable == len(o.tokens) and not o.final for o in outs)
    final = policy.update(SourceState(src, 5.0, finished=True))
    assert final.final and final.tokens == ("Ein", "großer", "Hund.")  # the full stop waited for the end
    prev: tuple[str, ...] = ()
    for o in [*outs, final]:
        assert o.tokens[: len(prev)] == prev  # never a revision
        prev = o.tokens
    # an ASR tail that is not stable is not read
    policy.reset()
    out = policy.update(SourceState(("A", "big", "dog"), 3.0, stable=1))
    assert out.tokens == () and len(fake.read_words) == 1


def test_empty_source_and_bad_k(tiny: dict[str, Any]) -> None:
    backend = TorchIncremental(tiny["model"], tiny["sp"])
    policy = WaitkPolicy(backend, 3)  # type: ignore[arg-type]
    assert policy.finish().tokens == () and policy.finish().final
    with pytest.raises(ValueError):
        WaitkPolicy(backend, 0)  # type: ignore[arg-type]


def test_bad_model_dir(tmp_path: Path) -> None:
    from models.waitk.runtime import WaitkModelDirError, WaitkOnnx, is_waitk_dir

    assert not is_waitk_dir(tmp_path)
    with pytest.raises(WaitkModelDirError, match="not a wait-k model directory"):
        WaitkOnnx(tmp_path)


def test_waitk_replay_text_through_the_cli(
    tiny: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from app.cli import main

    src = tmp_path / "src.en"
    ref = tmp_path / "ref.de"
    src.write_text("A man walks down the street.\nTwo dogs play in the snow.\n", encoding="utf-8")
    ref.write_text("Ein Mann geht die Straße entlang.\nZwei Hunde spielen im Schnee.\n", encoding="utf-8")
    log = tmp_path / "w.jsonl"
    code = main(["replay-text", "--source", str(src), "--reference", str(ref), "--policy", "waitk", "--k", "2",
                 "--model", str(tiny["dir"]), "--log", str(log), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    scores = json.loads(out.strip().splitlines()[-1])
    assert scores["n"] == 2 and scores["NE"] == 0.0  # wait-k never erases
    rows = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()]
    for r in rows:  # no target word before k = 2 source words were read
        assert all(d >= 2 for d in r["delays"])
    code = main(["replay-text", "--source", str(src), "--policy", "waitk", "--k", "0", "--model", str(tiny["dir"])])
    assert code == 2 and "--k" in capsys.readouterr().err
