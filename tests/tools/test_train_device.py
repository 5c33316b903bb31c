"""The accelerator trainer's pieces on the CPU: device-resident batches, the clock-driven schedule, the WER count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.asr.frontend import Cmvn, FrontendOptions  # noqa: E402
from models.asr.paraformer.data import Example, collate  # noqa: E402
from tools.train_device import DeviceFeatures, DeviceTrainOptions, lr_at, word_errors  # noqa: E402


def _examples() -> list[Example]:
    rng = np.random.default_rng(0)
    return [Example(rng.standard_normal((n, 80)).astype(np.float16), tuple(int(x) for x in rng.integers(3, 50, k)),
                    f"utt {i}") for i, (n, k) in enumerate([(61, 4), (130, 7), (20, 1), (95, 5)])]


def test_device_batches_equal_the_cpu_collate() -> None:
    examples = _examples()
    cmvn = Cmvn(np.full(560, -0.1, np.float32), np.full(560, 0.9, np.float32))
    feats = DeviceFeatures(examples, cmvn, torch.device("cpu"))
    idx = [3, 0, 1]
    speech, lengths, targets, target_lengths = feats.batch(idx)
    ref = collate([examples[i] for i in idx], FrontendOptions(), cmvn)
    assert torch.equal(lengths, ref.lengths) and torch.equal(target_lengths, ref.target_lengths)
    assert torch.equal(targets, ref.targets)
    # features are stored as float16 on the device
    assert torch.allclose(speech, ref.speech, atol=2e-2, rtol=1e-3)
    assert int(lengths[1]) < speech.shape[1] and float(speech[1, int(lengths[1]) :].abs().sum()) == 0.0


def test_learning_rate_warms_up_then_anneals_with_the_clock() -> None:
    opts = DeviceTrainOptions(work_dir=Path("."), init=Path("x"), out_dir=Path("."), lr=1e-3, warmup_steps=100,
                              min_lr_ratio=0.05)
    assert lr_at(0, 0.0, opts) == pytest.approx(1e-5)
    assert lr_at(99, 0.0, opts) == pytest.approx(1e-3)
    assert lr_at(500, 0.5, opts) == pytest.approx(1e-3 * (0.05 + 0.95 * 0.5))
    assert lr_at(900, 1.0, opts) == pytest.approx(5e-5)
    assert lr_at(900, 3.0, opts) == pytest.approx(5e-5)  # past the budget: stays at the floor


def test_word_errors_match_jiwer() -> None:
    from streaming.metrics.quality import word_error_rate

    pairs = [("a man rides a bike", "a man rides a red bike"), ("two dogs", "two dogs play"), ("", "a cat"),
             ("the the cat sat", "the cat sat on it"), ("x y z", "a b")]
    for hyp, ref in pairs:
        assert 100.0 * word_errors(hyp, ref) / len(ref.split()) == pytest.approx(word_error_rate([hyp], [ref]))


def test_init_weights_need_the_tokenizer_and_cmvn_of_their_run(tmp_path: Path) -> None:
    from models.asr.paraformer.train import ParaformerTrainOptions, train

    opts = ParaformerTrainOptions(work_dir=tmp_path, init_weights=tmp_path / "w.pt")
    with pytest.raises(FileNotFoundError, match=r"tokens\.model and cmvn\.npz"):
        train(opts)


def test_device_spec_augment_masks_bands_and_spans_within_bounds() -> None:
    from models.asr.paraformer.data import SpecAugment
    from tools.train_device import spec_augment_on_device

    g = torch.Generator().manual_seed(0)
    speech = torch.rand(6, 40, 560) + 1.0  # no zeros before masking
    lengths = torch.tensor([40, 40, 30, 12, 5, 40])
    aug = SpecAugment(freq_masks=2, freq_width=10, time_masks=2, time_width=4)
    out = spec_augment_on_device(speech, lengths, aug, generator=g)
    zero = out == 0
    for b in range(6):
        z = zero[b].reshape(40, 7, 80)
        bins = z.all(dim=(0, 1))  # mel bins masked in every frame and every stacked frame
        frames = z.all(dim=(1, 2))  # whole LFR frames masked
        # every zero is explained by a masked band or a masked span
        assert torch.equal(z, (bins[None, None, :] | frames[:, None, None]).expand(40, 7, 80))
        assert int(bins.sum()) <= 20
        assert int(frames.sum()) <= 2 * min(4, int(lengths[b]) // 5)
    assert int(zero.sum()) > 0
    off = spec_augment_on_device(speech, lengths, SpecAugment(0, 0, 0, 0), generator=g)
    assert torch.equal(off, speech)


def test_features_extended_later_equal_features_loaded_at_once() -> None:
    examples = _examples()
    cmvn = Cmvn(np.zeros(560, np.float32), np.ones(560, np.float32))
    at_once = DeviceFeatures(examples, cmvn, torch.device("cpu"))
    grown = DeviceFeatures(examples[:2], cmvn, torch.device("cpu"))
    grown.extend(examples[2:])
    assert grown.count == at_once.count == 4
    idx = [3, 2, 0]
    for a, b in zip(grown.batch(idx), at_once.batch(idx), strict=True):
        assert torch.equal(a, b)
