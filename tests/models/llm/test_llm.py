"""Interleaved (EAST-style) LLM translation: data chunking, the read/write protocol, KV-cache reuse, training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.llm.interleave import Chunk, chunk_pair, render_text, safe_target_lengths
from streaming.policies.llm import ControlIds, LlmPolicy, SequenceTooLongError
from streaming.types import SourceState

REPO = Path(__file__).resolve().parents[3]
SPM = REPO / "models" / "pretrained" / "marian-en-de" / "source.spm"

SOURCE = "A man is riding a red bike ."
FULL = "Ein Mann fährt ein rotes Fahrrad ."
PREFIXES = ["Ein", "Ein Mann", "Ein Mann ist", "Ein Mann fährt", "Ein Mann fährt ein", "Ein Mann fährt ein rotes",
            "Ein Mann fährt ein rotes Fahrrad"]


# -- data -----------------------------------------------------------------------------------------------
def test_safe_lengths_are_the_non_decreasing_agreement_with_the_full_translation() -> None:
    safe = safe_target_lengths(["Eine", "Ein Mann", "Ein Frau", "Ein Mann fährt"], "Ein Mann fährt weg", 5)
    assert safe == [0, 2, 2, 3, 4]  # "Ein Frau" agrees on 1 word, but 2 were already safe


@pytest.mark.parametrize(("level", "extra"), [("low", 0), ("medium", 2), ("high", 4)])
def test_chunks_cover_the_pair_and_delay_grows_with_the_level(level: str, extra: int) -> None:
    chunks = chunk_pair(SOURCE, FULL, PREFIXES, level)
    assert [w for c in chunks for w in c.source] == SOURCE.split()
    assert [w for c in chunks for w in c.target] == FULL.split()
    assert all(c.source and c.target for c in chunks)
    read = 0
    safe = safe_target_lengths(PREFIXES, FULL, len(SOURCE.split()))
    written = 0
    for c in chunks:  # after reading r words, at most what the prefix r − extra agreed on is written
        read += len(c.source)
        written += len(c.target)
        allowed = len(FULL.split()) if read == len(SOURCE.split()) else (safe[read - extra - 1] if read > extra else 0)
        assert written <= allowed
    assert len(chunks) == {"low": 7, "medium": 5, "high": 3}[level]


def test_offline_level_is_one_chunk_and_render_matches_east_format() -> None:
    assert chunk_pair(SOURCE, FULL, PREFIXES, "offline") == [Chunk(tuple(SOURCE.split()), tuple(FULL.split()))]
    text = render_text([Chunk(("A", "man"), ("Ein", "Mann")), Chunk(("runs",), ("läuft",))], "<R>", "<W>")
    assert text == "A man<R>Ein Mann<W> runs<R> läuft<W>"
    assert chunk_pair("", FULL, [], "low") == [] and chunk_pair(SOURCE, "", [], "low") == []
    with pytest.raises(ValueError, match="latency"):
        chunk_pair(SOURCE, FULL, PREFIXES, "instant")


# -- the protocol, on a scripted model ---------------------------------------------------------------------
EOR, EOW, EOS, PAD = 90, 91, 1, 92
CTL = ControlIds(eor=EOR, eow=EOW, eos=EOS, suppress_read=(EOS, EOW, PAD), suppress_write=(EOR, PAD))


class ScriptedLM:
    """Reads words as one token each (id = 10 + word index); asks to write after the words in ``write_after``;
    each write emits ``per_write`` target tokens (ids 50, 51, …), then ``<|end-of-write|>``. Scores put the
    suppressed tokens on top, so a policy that does not suppress them fails."""

    def __init__(self, write_after: set[int], per_write: int = 2, max_positions: int = 1000) -> None:
        self.control = CTL
        self.max_positions = max_positions
        self.write_after = write_after
        self.per_write = per_write
        self.fed: list[list[int]] = []
        self.seq: list[int] = []

    def start(self, latency: str) -> None:
        self.seq = [7, 7]  # the prompt
        self.fed = []
        self.next_target = 50
        self.in_write = 0

    @property
    def length(self) -> int:
        return len(self.seq)

    def word_ids(self, word: str, *, first: bool) -> list[int]:
        return [10 + int(word[1:])]

    def _scores(self, best: int) -> np.ndarray:
        s = np.zeros(100, dtype=np.float32)
        s[[EOS, EOW, PAD, EOR]] = 5.0  # every control token looks tempting ...
        s[best] = 4.0 if best in (EOR, EOW) else 3.0
        if best in (EOR, EOW):
            s[[EOS, PAD]] = 9.0  # ... but only the allowed ones may win
            s[EOW if best == EOR else EOR] = 9.0
        else:
            s[[EOS, EOW, EOR, PAD]] = -1.0
        return s

    def feed(self, ids: list[int]) -> np.ndarray:
        self.fed.append(list(ids))
        self.seq.extend(ids)
        last = ids[-1]
        if last == EOR or 50 <= last < 90:
            if last == EOR:
                self.in_write = 0
            if self.in_write >= self.per_write:
                return self._scores(EOW)
            self.in_write += 1
            tok = self.next_target
            self.next_target += 1
            return self._scores(tok)
        word = last - 10
        return self._scores(EOR if word in self.write_after else 60)

    def decode_words(self, ids: list[int]) -> list[str]:
        return [f"t{i}" for i in ids]


def feed_words(policy: LlmPolicy, n: int, *, finish_with_last: bool = True) -> list[tuple[str, ...]]:
    words = tuple(f"w{i}" for i in range(n))
    shown = []
    for i in range(1, n + 1):
        st = policy.update(SourceState(words[:i], float(i), finished=finish_with_last and i == n))
        shown.append(st.tokens)
    return shown


def test_read_probe_write_protocol_and_forced_write_at_the_end() -> None:
    lm = ScriptedLM(write_after={1, 3})
    policy = LlmPolicy(lm, "low")
    shown = feed_words(policy, 6)
    # w0 read; w1 read → EOR → write 2; w2; w3 → EOR → write 2; w4; w5 = source end → forced write 2
    assert lm.fed == [[10], [11], [EOR], [50], [51], [EOW, 12], [13], [EOR], [52], [53], [EOW, 14], [15], [EOR],
                      [54], [55]]
    assert shown[0] == () and shown[1] == ("t50", "t51") and shown[3] == ("t50", "t51", "t52", "t53")
    assert shown[-1] == tuple(f"t{i}" for i in range(50, 56))
    assert policy.finish().final
    # every prefix shown is a prefix of the final output: the LLM policy never revises
    assert all(shown[-1][: len(s)] == s for s in shown)


def test_no_extra_write_when_the_last_word_was_already_answered() -> None:
    lm = ScriptedLM(write_after={2})
    policy = LlmPolicy(lm, "high")
    feed_words(policy, 3, finish_with_last=False)  # w2's probe already asked for a write
    calls = len(lm.fed)
    final = policy.update(SourceState(("w0", "w1", "w2"), 3.0, finished=True))
    assert final.final and len(lm.fed) == calls and final.tokens == ("t50", "t51")


def test_only_stable_asr_words_are_read_and_empty_source_ends_quietly() -> None:
    lm = ScriptedLM(write_after=set())
    policy = LlmPolicy(lm, "medium")
    policy.update(SourceState(("w0", "w1", "w2"), 1.0, stable=1))
    assert lm.fed == [[10]]
    policy.reset()
    assert policy.finish().tokens == () and lm.fed == []


def test_write_budget_and_context_limit() -> None:
    lm = ScriptedLM(write_after={0}, per_write=500)
    policy = LlmPolicy(lm, "low", max_write_tokens=5)
    policy.update(SourceState(("w0",), 1.0))
    assert len(policy.update(SourceState(("w0",), 1.0)).tokens) == 5
    assert policy._pending == [54, EOW]  # the cut chunk is closed for the model, as EAST does
    small = LlmPolicy(ScriptedLM(write_after=set(), max_positions=6), "low")
    with pytest.raises(SequenceTooLongError, match="positions"):
        feed_words(small, 5, finish_with_last=False)


def test_next_token_loss_rewards_prediction_not_copying() -> None:
    torch = pytest.importorskip("torch")
    from models.llm.train import next_token_loss

    ids = torch.tensor([[3, 7, 2, 9, 4, 0]])
    labels = ids.clone()
    labels[0, :2] = -100  # the prompt
    labels[0, -1] = -100  # padding
    predict = torch.full((1, 6, 10), -20.0)
    copy = torch.full((1, 6, 10), -20.0)
    for t in range(5):
        predict[0, t, ids[0, t + 1]] = 20.0  # position t names token t + 1
        copy[0, t, ids[0, t]] = 20.0  # position t repeats its own input
    assert float(next_token_loss(predict, labels)) < 1e-3
    assert float(next_token_loss(copy, labels)) > 10


# -- a tiny random Hugging Face model ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_llm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from transformers import MarianForCausalLM

    from models.llm.build import default_config
    from models.llm.tokens import tokenizer_from_spm

    out = tmp_path_factory.mktemp("tiny-llm")
    tok = tokenizer_from_spm(SPM)
    arch = {"encoder_layers": 1, "decoder_layers": 1, "d_model": 32, "heads": 2, "ffn_dim": 64, "dropout": 0.0}
    torch.manual_seed(0)
    model = MarianForCausalLM(default_config(arch, len(tok), tok.pad_token_id, tok.eos_token_id, 256))
    with torch.no_grad():  # make the control tokens likely enough that both modes occur
        model.model.decoder.embed_tokens.weight[[tok.convert_tokens_to_ids("<|end-of-read|>"),
                                                 tok.convert_tokens_to_ids("<|end-of-write|>")]] *= 8
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def run_sentence(policy: LlmPolicy, sentence: str) -> tuple[str, ...]:
    policy.reset()
    words = tuple(sentence.split())
    st = None
    for i in range(1, len(words) + 1):
        st = policy.update(SourceState(words[:i], float(i), finished=i == len(words)))
    assert st is not None and st.final
    return st.tokens


def test_cache_reuse_gives_identical_output_with_fewer_recomputed_tokens(tiny_llm_dir: Path) -> None:
    from models.llm.runtime import HfInterleavedLM

    base = HfInterleavedLM(tiny_llm_dir)
    cached, fresh = base.fork(reuse_cache=True), base.fork(reuse_cache=False)
    p_cached, p_fresh = LlmPolicy(cached, "medium", max_write_tokens=12), LlmPolicy(fresh, "medium",
                                                                                    max_write_tokens=12)
    sentences = ["A man is riding a bike .", "Two dogs play in the snow .", "A girl in a red dress sings ."]
    for s in sentences:
        assert run_sentence(p_cached, s) == run_sentence(p_fresh, s)
        assert cached.sequence == fresh.sequence  # the same interleaved token sequence, step for step
    assert p_cached.writes >= len(sentences)  # at least the forced write of each sentence
    from models.llm.tokens import prompt_ids

    ctl = cached.control
    seq = cached.sequence[len(prompt_ids(cached.tokenizer, "medium")):]
    controls = [t for t in seq if t in (ctl.eor, ctl.eow)]  # reads and writes alternate, starting with a read
    assert controls and controls == [ctl.eor, ctl.eow] * (len(controls) // 2) + [ctl.eor] * (len(controls) % 2)
    assert seq[0] not in (ctl.eor, ctl.eow)  # a word is read first


def test_onnx_export_reproduces_transformers_with_and_without_cache_reuse(tmp_path: Path, tiny_llm_dir: Path
                                                                          ) -> None:
    from models.llm.loader import LlmLoadError, open_interleaved_lm
    from models.llm.onnx_export import export_dir
    from models.llm.onnx_runtime import OnnxInterleavedLM
    from models.llm.runtime import HfInterleavedLM

    out = tmp_path / "onnx"
    report = export_dir(tiny_llm_dir, out, keep_fp32=True)  # scores checked in three cached pieces vs transformers
    assert report["max_abs_diff_fp32"] < 1e-4 and report["same_argmax_fp32"]
    assert isinstance(open_interleaved_lm(out), OnnxInterleavedLM)  # the graph wins over transformers
    assert isinstance(open_interleaved_lm(tiny_llm_dir), HfInterleavedLM)
    hf = HfInterleavedLM(tiny_llm_dir)
    onnx = OnnxInterleavedLM(out, graph_name="model.onnx")
    fresh = onnx.fork(reuse_cache=False)
    policies = [LlmPolicy(lm, "medium", max_write_tokens=12) for lm in (hf, onnx, fresh)]
    for s in ["A man is riding a bike .", "Two dogs play in the snow .", "A girl in a red dress sings ."]:
        outputs = [run_sentence(p, s) for p in policies]
        assert outputs[0] == outputs[1] == outputs[2]
        assert hf.sequence == onnx.sequence == fresh.sequence
    assert onnx.forward_calls == fresh.forward_calls + 1  # same steps, plus the prompt's cache computed once
    words = onnx.decode_words(hf.word_ids("Ein Mann", first=True))
    assert words == ["Ein", "Mann"] and onnx.control == hf.control
    (out / "model.onnx").write_bytes(b"not a graph")
    (out / "model_quant.onnx").unlink()
    with pytest.raises(LlmLoadError, match="cannot load"):
        open_interleaved_lm(out)


def test_export_command_writes_checked_onnx_and_bf16_variants(tmp_path: Path, tiny_llm_dir: Path) -> None:
    from models.exports import export_llm

    checks = export_llm(tiny_llm_dir, tmp_path, ["A man is riding a bike .", "Two dogs play ."], level="low")
    assert [c.variant for c in checks] == ["fp32", "int8", "bf16"] and all(c.passed for c in checks)
    assert checks[0].identical == 1.0  # the fp32 graph reproduces transformers exactly
    assert (tmp_path / "llm-en-de" / "model_quant.onnx").is_file() and (tmp_path / "llm-en-de-bf16").is_dir()


def test_hf_model_dir_errors(tmp_path: Path, tiny_llm_dir: Path) -> None:
    from models.llm.runtime import HfInterleavedLM, LlmModelDirError

    with pytest.raises(LlmModelDirError, match="not a Hugging Face"):
        HfInterleavedLM(tmp_path)
    from transformers import AutoTokenizer

    plain = tmp_path / "plain"
    tok = AutoTokenizer.from_pretrained(str(tiny_llm_dir))
    for f in tiny_llm_dir.iterdir():
        (plain / f.name).parent.mkdir(exist_ok=True)
        (plain / f.name).write_bytes(f.read_bytes())
    data = json.loads((plain / "tokenizer.json").read_text())
    data["added_tokens"] = [t for t in data["added_tokens"] if "end-of" not in t["content"]]
    (plain / "tokenizer.json").write_text(json.dumps(data))
    cfg = json.loads((plain / "tokenizer_config.json").read_text())
    cfg.pop("added_tokens_decoder", None)
    cfg.pop("extra_special_tokens", None)
    cfg.pop("additional_special_tokens", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert "<|end-of-read|>" in tok.get_vocab()
    with pytest.raises(LlmModelDirError, match="end-of-read"):
        HfInterleavedLM(plain)


def test_train_resume_export_and_cli(tmp_path: Path, tiny_llm_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main
    from models.llm.train import LlmTrainOptions, finalize, train

    distill = tmp_path / "distill.jsonl"
    pairs = [(SOURCE, FULL, PREFIXES),
             ("Two dogs play .", "Zwei Hunde spielen .", ["Zwei", "Zwei Hunde", "Zwei Hunde spielen"])]
    distill.write_text("".join(json.dumps({"index": i, "source": s, "full": f, "prefixes": p}) + "\n"
                               for i, (s, f, p) in enumerate(pairs * 4)))
    opts = LlmTrainOptions(distill_file=distill, work_dir=tmp_path / "work", base=str(tiny_llm_dir), epochs=1,
                           val_limit=2, threads=1, max_tokens=400)
    work = train(opts)
    opts.epochs = 2
    train(opts)  # resumes: only epoch 2 runs
    log = [json.loads(x) for x in (work / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and all(np.isfinite(r["loss"]) for r in log)
    out = finalize(work, tmp_path / "export")  # a Marian model: exported as ONNX int8, the HF directory kept in work
    assert (out / "model_quant.onnx").is_file() and (out / "tokenizer.json").is_file()
    assert not list(out.glob("*.safetensors")) and (work / "hf" / "model.safetensors").is_file()
    assert "ONNX, int8" in (out / "README.md").read_text()
    src, ref = tmp_path / "src.en", tmp_path / "ref.de"
    src.write_text("A man is riding a bike .\nTwo dogs play .\n")
    ref.write_text("Ein Mann fährt Fahrrad .\nZwei Hunde spielen .\n")
    for latency in ("low", "high"):
        code = main(["replay-text", "--source", str(src), "--reference", str(ref), "--policy", "llm", "--latency",
                     latency, "--llm-model", str(out), "--json"])
        stdout = capsys.readouterr().out
        assert code == 0
        result = json.loads(stdout.strip().splitlines()[-1])
        assert result["n"] == 2 and result["NE"] == 0.0  # the LLM policy never erases
    code = main(["replay-text", "--source", str(src), "--policy", "llm", "--llm-model", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and "Traceback" not in err
