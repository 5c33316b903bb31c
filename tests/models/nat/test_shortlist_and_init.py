"""Lexical shortlist (construction, lookup, coverage, runtime use) and NAT initialisation from the AR model."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from models.nat.shortlist import Shortlist, build_shortlist, coverage

torch = pytest.importorskip("torch")


def test_shortlist_keeps_associated_and_frequent_pieces(tmp_path: Path) -> None:
    # source piece 5 always comes with target 50, piece 6 with 60; target 9 is in every sentence
    sources = [[5, 7], [5, 8], [6, 7], [6, 8], [5, 6]]
    targets = [[50, 9], [50, 9], [60, 9], [60, 9], [50, 60, 9]]
    sl = build_shortlist(sources, targets, vocab_size=100, blank_id=100, per_source=1, frequent=1)
    assert sl.frequent.tolist() == [9, 100]  # the most frequent target piece, plus the blank
    assert sl.for_source([5]).tolist() == [9, 50, 100]
    assert sl.for_source([6, 1]).tolist() == [9, 60, 100]  # piece 1 (</s>) was never seen: adds nothing
    assert sl.for_source([5, 6]).tolist() == [9, 50, 60, 100]
    assert sl.for_source([]).tolist() == [9, 100]
    assert coverage(sl, [[5], [6]], [[50, 9], [60, 50]]) == pytest.approx(3 / 4)
    back = Shortlist.load(sl.save(tmp_path / "s.npz"))
    assert back.for_source([5, 6]).tolist() == sl.for_source([5, 6]).tolist()
    with pytest.raises(ValueError, match="targets"):
        build_shortlist([[1]], [], vocab_size=10, blank_id=10)


def test_translator_uses_the_shortlist(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from models.nat.export import convert
    from models.nat.model import ModelConfig, NATModel
    from models.nat.runtime import NatTranslator
    from models.text.spm import train_joint_spm
    from tests.conftest import multi30k_lines

    en, de = multi30k_lines("train.en", 200), multi30k_lines("train.de", 200)
    spm_path = train_joint_spm(en + de, tmp_path / "spm", vocab_size=200)
    cfg = ModelConfig(vocab_size=200, d_model=32, heads=2, ffn_dim=64, encoder_layers=1, decoder_layers=1,
                      dropout=0.0, max_positions=256)
    torch.manual_seed(0)
    model = NATModel(cfg).eval()
    allowed = np.array([4, 17, 33, cfg.blank_id], dtype=np.int64)
    sl = Shortlist(frequent=allowed, offsets=np.zeros(cfg.vocab_size + 1, dtype=np.int64),
                   candidates=np.zeros(0, dtype=np.int64))
    out = convert(model, spm_path, tmp_path / "m", quantization=None, shortlist=sl)
    short = NatTranslator(out, quantized=False)
    full = NatTranslator(out, quantized=False, use_shortlist=False)
    assert short.shortlist is not None and full.shortlist is None
    ids = short.encode(en[0])
    assert set(short.translate_ids(ids)) <= {4, 17, 33}
    assert full.translate_ids(ids) != short.translate_ids(ids)  # a random model strays far outside 4 pieces


def test_nat_initialised_from_ar_reproduces_its_encoder() -> None:
    pytest.importorskip("transformers")
    from models.marian.export import MarianArch, build_model
    from models.nat.init_from_ar import ArInitError, init_from_ar, nat_config_like_ar
    from models.nat.model import ModelConfig, NATModel

    arch = MarianArch(vocab_size=61, d_model=32, encoder_layers=2, decoder_layers=1, heads=2, ffn_dim=64,
                      dropout=0.0, max_positions=64)
    torch.manual_seed(0)
    ar = build_model(arch).eval()
    sd = ar.state_dict()
    cfg = nat_config_like_ar(asdict(arch), 60, dropout=0.0, max_positions=128)
    nat = init_from_ar(NATModel(cfg), sd).eval()
    src = torch.tensor([[3, 17, 42, 8, 1]])
    with torch.no_grad():
        want = ar.model.encoder(input_ids=src).last_hidden_state
        got = nat.encode(src, None)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(nat.embed.weight[:60], sd["model.shared.weight"][:60])
        up = nat.upsample(got)  # [1, 2·S, d]: both copies of each position start as the encoder state
        torch.testing.assert_close(up[0, 0::2], got[0])
        cross_o = sd["model.decoder.layers.0.encoder_attn.out_proj.weight"]
        torch.testing.assert_close(nat.decoder[0].cross_att.o.weight, cross_o)
    with pytest.raises(ArInitError, match="post-norm"):
        init_from_ar(NATModel(ModelConfig(vocab_size=60, d_model=32, heads=2, ffn_dim=64, max_positions=128)), sd)
    deeper = nat_config_like_ar(asdict(arch), 60, encoder_layers=3, max_positions=128)
    with pytest.raises(ArInitError, match="fewer layers, not more"):
        init_from_ar(NATModel(deeper), sd)
    # a shallower student takes the AR's last encoder layer when it keeps one
    shallow = init_from_ar(NATModel(nat_config_like_ar(asdict(arch), 60, encoder_layers=1, max_positions=128)), sd)
    torch.testing.assert_close(shallow.encoder[0].ff[0].weight, sd["model.encoder.layers.1.fc1.weight"])


def test_spread_layers_keeps_first_and_last() -> None:
    from models.nat.init_from_ar import ArInitError, spread_layers

    assert spread_layers(3, 3) == [0, 1, 2]
    assert spread_layers(3, 2) == [0, 2]
    assert spread_layers(6, 3) == [0, 2, 5] or spread_layers(6, 3) == [0, 3, 5]
    assert spread_layers(4, 1) == [3]
    with pytest.raises(ArInitError):
        spread_layers(2, 3)


def test_shallower_nat_initialised_from_a_trained_nat(tmp_path: Path) -> None:
    from models.nat.init_from_ar import ArInitError, init_from_nat, is_nat_work_dir, load_nat_state
    from models.nat.model import ModelConfig, NATModel
    from models.training import save_epoch

    torch.manual_seed(0)
    big_cfg = ModelConfig(vocab_size=60, d_model=32, heads=2, ffn_dim=64, encoder_layers=3, decoder_layers=3,
                          max_positions=128, dropout=0.0)
    big = NATModel(big_cfg)
    optim = torch.optim.AdamW(big.parameters())
    save_epoch(tmp_path, 1, 10, asdict(big_cfg), big, optim)
    assert is_nat_work_dir(tmp_path) and not is_nat_work_dir(tmp_path / "missing")
    sd, cfg = load_nat_state(tmp_path)
    assert cfg == big_cfg
    small_cfg = ModelConfig(**{**asdict(big_cfg), "encoder_layers": 2, "decoder_layers": 2})
    small = init_from_nat(NATModel(small_cfg), sd, cfg)
    for name in ("encoder", "decoder"):
        src_blocks, dst_blocks = getattr(big, name), getattr(small, name)
        for dst, src in zip(dst_blocks, (src_blocks[0], src_blocks[2]), strict=True):
            for (_, a), (_, b) in zip(dst.state_dict().items(), src.state_dict().items(), strict=True):
                torch.testing.assert_close(a, b)
    torch.testing.assert_close(small.embed.weight, big.embed.weight)
    torch.testing.assert_close(small.up.weight, big.up.weight)
    with pytest.raises(ArInitError, match="d_model"):
        init_from_nat(NATModel(ModelConfig(**{**asdict(big_cfg), "d_model": 16, "ffn_dim": 32})), sd, cfg)



def test_incremental_union_equals_fresh_lookup() -> None:
    import random

    rng = random.Random(0)
    sources = [[rng.randrange(60) for _ in range(rng.randint(1, 6))] for _ in range(200)]
    targets = [[rng.randrange(60) for _ in range(rng.randint(1, 6))] for _ in range(200)]
    sl = build_shortlist(sources, targets, vocab_size=60, blank_id=60, per_source=5, frequent=4)
    union = sl.incremental()
    words = [[rng.randrange(60) for _ in range(2)] for _ in range(12)]
    prefix: list[int] = []
    for w in words:  # a growing prefix (with </s>-like id 1 at the end), then a revision, then a new sentence
        prefix += w
        assert union([*prefix, 1]).tolist() == sl.for_source([*prefix, 1]).tolist()
    assert union(prefix[:3]).tolist() == sl.for_source(prefix[:3]).tolist()
    assert union([7, 99]).tolist() == sl.for_source([7, 99]).tolist()
