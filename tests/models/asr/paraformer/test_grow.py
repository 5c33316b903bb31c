"""Growing a Paraformer checkpoint deeper: the same outputs, live new layers, the optimiser state carried over."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from models.asr.paraformer.grow import grow_checkpoint, growth  # noqa: E402
from models.asr.paraformer.model import Paraformer, ParaformerConfig  # noqa: E402

SMALL = dict(vocab_size=30, input_dim=20, d_model=16, heads=2, ffn_dim=32, encoder_layers=2, decoder_layers=1,
             dropout=0.0, chunk_train_prob=0.0, align_weight=1.0)


def _batch() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    speech = torch.randn(2, 25, 20, generator=g)
    lengths = torch.tensor([25, 18])
    targets = torch.tensor([[5, 6, 7, 8], [9, 10, -1, -1]])
    return speech, lengths, targets, torch.tensor([4, 2])


def _trained_checkpoint() -> dict:
    torch.manual_seed(3)
    model = Paraformer(ParaformerConfig(**SMALL))
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(2):
        optim.zero_grad()
        model(*_batch()).loss.backward()
        optim.step()
    return {"model": model.state_dict(), "optim": optim.state_dict(), "config": model.config.to_dict(),
            "state": {"epoch": 1}}


def test_grown_model_computes_the_same_and_its_new_layers_learn() -> None:
    ck = _trained_checkpoint()
    old = Paraformer(ParaformerConfig.from_dict(ck["config"]))
    old.load_state_dict(ck["model"])
    config = ParaformerConfig(**{**SMALL, "encoder_layers": 4, "decoder_layers": 2})
    grown_ck = grow_checkpoint(ck, config)
    assert grown_ck["config"]["encoder_layers"] == 4 and grown_ck["config"]["decoder_layers"] == 2
    assert grown_ck["state"] == {"epoch": 1}
    grown = Paraformer(config)
    grown.load_state_dict(grown_ck["model"])
    old.eval(), grown.eval()
    speech, lengths, _, _ = _batch()
    with torch.no_grad():
        lp_old, n_old = old.infer(speech, lengths)
        lp_new, n_new = grown.infer(speech, lengths)
    assert torch.equal(n_old, n_new)
    assert torch.allclose(lp_old, lp_new, atol=1e-5)
    # every zeroed matrix of the new layers gets a gradient on the first step
    grown.train()
    torch.manual_seed(0)
    grown(*_batch()).loss.backward()
    new_enc, new_dec = grown.encoder.layers[3], 1
    assert float(new_enc.att.qkv.weight.grad[32:].abs().sum()) > 0  # values (through the FSMN memory)
    assert float(new_enc.ffn.w2.weight.grad.abs().sum()) > 0
    assert float(grown.decoder.fsmn[new_dec].conv.weight.grad.abs().sum()) > 0
    assert float(grown.decoder.cross[new_dec].out.weight.grad.abs().sum()) > 0
    assert float(grown.decoder.ffn[new_dec].w2.weight.grad.abs().sum()) > 0


def test_optimiser_state_follows_each_parameter_by_name() -> None:
    ck = _trained_checkpoint()
    old_names = [n for n, _ in Paraformer(ParaformerConfig.from_dict(ck["config"])).named_parameters()]
    config = ParaformerConfig(**{**SMALL, "encoder_layers": 3, "decoder_layers": 2})
    grown_ck = grow_checkpoint(ck, config)
    grown = Paraformer(config)
    new_names = [n for n, _ in grown.named_parameters()]
    state = grown_ck["optim"]["state"]
    for name in ("encoder.norm.weight", "decoder.out.weight", "predictor.out.bias", "encoder.layers.1.ffn.w1.weight"):
        before = ck["optim"]["state"][old_names.index(name)]["exp_avg"]
        assert torch.equal(state[new_names.index(name)]["exp_avg"], before)
    assert new_names.index("encoder.layers.2.att.qkv.weight") not in state  # new layers start fresh
    optim = torch.optim.AdamW(grown.parameters(), lr=1e-3)
    grown.load_state_dict(grown_ck["model"])
    optim.load_state_dict(grown_ck["optim"])  # loads, and steps
    grown(*_batch()).loss.backward()
    optim.step()


def test_growth_refuses_to_shrink_or_change_width() -> None:
    ck = _trained_checkpoint()
    with pytest.raises(ValueError, match="shrink"):
        growth(ParaformerConfig(**SMALL), ParaformerConfig(**{**SMALL, "encoder_layers": 1}))
    with pytest.raises(ValueError, match="d_model"):
        grow_checkpoint(ck, ParaformerConfig(**{**SMALL, "encoder_layers": 3, "d_model": 32}))


def test_resume_without_grow_names_the_flag(tmp_path: Path) -> None:
    from models.asr.paraformer.train import ParaformerTrainOptions, check_resume

    ck = _trained_checkpoint()
    last = tmp_path / "last.pt"
    torch.save(ck, last)
    opts = ParaformerTrainOptions(work_dir=tmp_path)
    config = ParaformerConfig(**{**SMALL, "encoder_layers": 3})
    with pytest.raises(ValueError, match="--grow"):
        check_resume(opts, config, last)
    opts.grow = True
    check_resume(opts, config, last)
    assert torch.load(last, weights_only=False)["config"]["encoder_layers"] == 3
    assert (tmp_path / "last-e2d1.pt").is_file()
    check_resume(opts, config, last)  # already grown: resumes as is
