"""Training plumbing on a handful of espeak utterances: losses, chunk masks, resume, export."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.asr.paraformer.model import Paraformer, ParaformerConfig, chunk_mask  # noqa: E402


def test_chunk_mask_geometry() -> None:
    m = chunk_mask(10, chunk=3, lookahead=1, left=2)
    # frame 4 is in chunk [3, 6): it sees frames 1..6
    assert m[4].nonzero().flatten().tolist() == [1, 2, 3, 4, 5, 6]
    assert m[0].nonzero().flatten().tolist() == [0, 1, 2, 3]
    assert m[9].nonzero().flatten().tolist() == [7, 8, 9]


def test_training_step_with_chunk_mask_and_ctc() -> None:
    torch.manual_seed(0)
    model = Paraformer(ParaformerConfig(vocab_size=30, d_model=32, heads=2, ffn_dim=64, encoder_layers=2,
                                        decoder_layers=1, chunk_train_prob=1.0, ctc_weight=0.3))
    x = torch.randn(2, 40, 560)
    out = model(x, torch.tensor([40, 25]), torch.tensor([[5, 6, 7, 8], [9, 10, -1, -1]]), torch.tensor([4, 2]))
    assert out.tokens == 4 + 1 + 2 + 1  # targets plus one end slot each
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads if g is not None)
    assert model.predictor.out.weight.grad is not None and model.predictor.out.weight.grad.abs().sum() > 0


def test_encoder_warmup_step_trains_encoder_ctc_and_predictor_only() -> None:
    torch.manual_seed(0)
    model = Paraformer(ParaformerConfig(vocab_size=30, d_model=32, heads=2, ffn_dim=64, encoder_layers=2,
                                        decoder_layers=1, chunk_train_prob=0.0, ctc_weight=0.3, dropout=0.0))
    args = (torch.randn(2, 40, 560), torch.tensor([40, 25]), torch.tensor([[5, 6, 7, 8], [9, 10, -1, -1]]),
            torch.tensor([4, 2]))
    joint = model(*args)
    warm = model(*args, encoder_only=True)
    assert warm.ctc_loss is not None and float(warm.ctc_loss.detach()) == pytest.approx(warm.ctc, rel=1e-5)
    assert warm.ctc == pytest.approx(joint.ctc, rel=1e-5) and warm.quantity == pytest.approx(joint.quantity)
    assert float(warm.loss) == pytest.approx(warm.ctc + warm.quantity, rel=1e-5)
    warm.loss.backward()
    assert model.ctc is not None and model.ctc.weight.grad is not None
    assert model.predictor.out.weight.grad is not None  # the quantity loss trains the CIF predictor already
    assert all(p.grad is None for p in model.decoder.parameters())  # the decoder waits for the joint loss
    model.zero_grad(set_to_none=True)
    warm = model(*args, encoder_only=True)
    (warm.loss - warm.ctc_loss).backward()  # the quantity term alone: it trains the predictor, not the encoder
    assert model.predictor.out.weight.grad is not None and model.predictor.out.weight.grad.abs().sum() > 0
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0.0 for p in model.encoder.parameters())


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_train_resume_and_export(tmp_path: Path) -> None:
    from models.asr.paraformer.train import ParaformerTrainOptions, finalize, train
    from models.asr.runtime import ParaformerOnnx

    data = tmp_path / "data"
    data.mkdir()
    lines = ["a dog runs in the park", "two men play soccer", "a woman sings a song", "the boy eats an apple",
             "a cat sleeps on a red sofa", "people walk down the street"]
    (data / "train.en").write_text("\n".join(lines) + "\n")
    (data / "val.en").write_text("\n".join(lines[:2]) + "\n")
    opts = ParaformerTrainOptions(work_dir=tmp_path / "work", data_dir=data, epochs=1, val_limit=2, vocab_size=40,
                                  d_model=32, heads=2, ffn_dim=64, encoder_layers=1, decoder_layers=1, threads=1,
                                  festival_share=0.0, progress=False, max_frames=400, warmup_steps=5,
                                  ctc_warmup_steps=2)
    work = train(opts)
    first = (work / "epoch01.pt").stat().st_mtime_ns
    assert len((work / "log.jsonl").read_text().splitlines()) == 1
    opts.epochs = 2
    train(opts)  # resumes: only epoch 2 runs
    log = [json.loads(x) for x in (work / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    assert log[1]["step"] > log[0]["step"]
    assert (work / "epoch01.pt").stat().st_mtime_ns == first
    out = finalize(work, tmp_path / "export", average_last=2)
    assert (out / "README.md").is_file() and (out / "tokens.model").is_file()
    rt = ParaformerOnnx(out, quantized=True)
    assert len(rt.tokens) == len(json.loads((out / "tokens.json").read_text()))
    assert isinstance(rt.transcribe(np.zeros(16000, np.float32)), str)
    small = finalize(work, tmp_path / "int8", average_last=2, int8_only=True)  # what gets bundled
    assert not any((small / n).exists() for n in ("model.onnx", "stream_encoder.onnx", "stream_decoder.onnx"))
    assert len(list(small.glob("*_quant.onnx"))) == 3
    float_asked = ParaformerOnnx(small, quantized=False)  # e.g. on CUDA: the int8 graphs still serve
    assert float_asked.encode(np.zeros((8, 560), np.float32))[0].shape[0] == 8
    # a new run from these weights (same tokenizer and CMVN): one step away from them, not a fresh init
    init = tmp_path / "init"
    init.mkdir()
    for f in ("tokens.model", "cmvn.npz", "corpus"):
        os.symlink((work / f).resolve(), init / f)
    first_opts = ParaformerTrainOptions(**{**opts.__dict__, "work_dir": init, "init_weights": work / "epoch02.pt",
                                           "epochs": 1, "max_minutes": 1e-6})
    train(first_opts)
    start = torch.load(work / "epoch02.pt", weights_only=False)["model"]
    after = torch.load(init / "last.pt", weights_only=False)["model"]
    assert max(float((after[k] - start[k]).abs().max()) for k in start) < 0.01
    # the accelerator trainer, run on the CPU: renders its own corpus, trains to its clock, writes float16 weights
    # (and their mean over the last epochs) that load back as a CPU run's starting point
    from tools.train_device import DeviceTrainOptions, train_on_device

    dev = DeviceTrainOptions(work_dir=init, init=work / "epoch02.pt", out_dir=tmp_path / "dev", data_dir=data,
                             device="cpu", minutes=0.15, copies=2, val_limit=2, festival_share=0.0, max_frames=400,
                             jobs=1, warmup_steps=2)
    weights = train_on_device(dev)
    got = torch.load(weights, weights_only=False)
    assert got["log"][0]["epoch"] == 0 and got["log"][-1]["step"] > 0
    assert {v.dtype for v in got["model"].values()} == {torch.float16}
    avg = tmp_path / "dev" / "paraformer_weights_avg.pt"
    if len(got["log"]) > 2:  # at least two epochs trained
        assert torch.load(avg, weights_only=False)["averaged"] >= 2
    assert finalize(work, tmp_path / "from-device", weights=weights, int8_only=True).is_dir()
    # the bundled export is the mean of several weight files (CLI: --export-weights F1 F2 ...)
    from models.asr.paraformer.train import average_weight_files

    e1, e2 = (torch.load(work / f"epoch0{i}.pt", weights_only=False)["model"] for i in (1, 2))
    mean = average_weight_files([work / "epoch01.pt", work / "epoch02.pt"]).state_dict()
    assert all(torch.allclose(mean[k], (e1[k].float() + e2[k].float()) / 2) for k in e1)
    odd = torch.load(work / "epoch02.pt", weights_only=False)
    key = next(iter(odd["model"]))
    odd["model"][key] = torch.zeros(3)
    torch.save(odd, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match="other layer shapes"):
        average_weight_files([work / "epoch01.pt", tmp_path / "odd.pt"])
    assert "averaged: 2" in (finalize(work, tmp_path / "mean", weights=[work / "epoch01.pt", weights],
                                      int8_only=True) / "config.yaml").read_text()
    opts.epochs, opts.d_model = 3, 16
    with pytest.raises(ValueError, match="d_model"):
        train(opts)  # resuming with another architecture fails with a clear message


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_data_parallel_workers_share_the_batches_and_resume_alone(tmp_path: Path) -> None:
    from models.asr.paraformer.data import batch_indices
    from models.asr.paraformer.train import ParaformerTrainOptions, prepare, train

    data = tmp_path / "data"
    data.mkdir()
    lines = ["a dog runs in the park", "two men play soccer", "a woman sings a song", "the boy eats an apple",
             "a cat sleeps on a red sofa", "people walk down the street", "a girl rides a bike", "birds fly"]
    (data / "train.en").write_text("\n".join(lines) + "\n")
    (data / "val.en").write_text("\n".join(lines[:2]) + "\n")
    opts = ParaformerTrainOptions(work_dir=tmp_path / "work", data_dir=data, epochs=1, val_limit=2, vocab_size=40,
                                  d_model=32, heads=2, ffn_dim=64, encoder_layers=1, decoder_layers=1, threads=1,
                                  processes=2, festival_share=0.0, progress=False, max_frames=120, warmup_steps=5,
                                  ctc_warmup_steps=2)
    work = train(opts)
    log = [json.loads(x) for x in (work / "log.jsonl").read_text().splitlines()]
    train_ex = prepare(opts)[2]
    n_batches = len(batch_indices(train_ex, max_frames=120, seed=opts.seed, epoch=1))
    assert n_batches >= 4 and log[0]["step"] == n_batches // 2  # two workers: half the steps, same data
    import torch

    assert torch.load(work / "last.pt", map_location="cpu", weights_only=False)["state"]["workers"] == 2
    opts.epochs, opts.processes, opts.max_minutes = 2, 1, 1e-6
    train(opts)  # the data-parallel checkpoint resumes in one process; stops after one step (mid-epoch)
    state = torch.load(work / "last.pt", map_location="cpu", weights_only=False)["state"]
    assert state["epoch"] == 1 and state["batch"] == 1 and state["workers"] == 1
    opts.processes, opts.max_minutes = 2, 0.0
    train(opts)  # two workers again, mid-epoch: 1 single-worker batch done = 0 steps of two workers
    assert [json.loads(x)["epoch"] for x in (work / "log.jsonl").read_text().splitlines()] == [1, 2]
    opts.epochs, opts.dropout, opts.predictor_weight = 3, 0.0, 0.5  # training-only settings may change
    train(opts)
    ck = torch.load(work / "last.pt", map_location="cpu", weights_only=False)
    assert ck["state"]["epoch"] == 3 and ck["config"]["dropout"] == 0.0 and ck["config"]["predictor_weight"] == 0.5
    opts.ffn_dim = 48  # a weight shape may not
    with pytest.raises(ValueError, match="ffn_dim"):
        train(opts)
    opts.ffn_dim, opts.processes = 64, 0
    with pytest.raises(ValueError, match="processes"):
        train(opts)


def test_a_worker_dies_with_its_launcher(tmp_path: Path) -> None:
    """Killing the launcher of data-parallel training must not leave its workers training (and saving) on."""
    import subprocess
    import sys
    import time

    from models.asr.paraformer.parallel import die_with_parent

    if not sys.platform.startswith("linux"):
        assert die_with_parent(0) is False
        return
    pid_file = tmp_path / "worker.pid"
    worker = ("import os, sys, time; from models.asr.paraformer.parallel import die_with_parent; "
              f"ok = die_with_parent({{ppid}}); open({str(pid_file)!r}, 'w').write(str(os.getpid()) if ok else 'x'); "
              "time.sleep(60)")
    launcher = ("import os, subprocess, sys, time; "
                f"subprocess.Popen([sys.executable, '-c', {worker!r}.replace('{{ppid}}', str(os.getpid()))]); "
                f"[time.sleep(0.05) for _ in range(400) if not os.path.exists({str(pid_file)!r})]")
    root = Path(__file__).resolve().parents[4]
    subprocess.run([sys.executable, "-c", launcher], cwd=root, check=True, timeout=60)  # returns: the launcher died
    pid = pid_file.read_text()
    assert pid.isdigit(), "die_with_parent did not take effect"
    for _ in range(100):
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(int(pid), 9)
    raise AssertionError("the worker outlived its launcher")


def test_token_starts_of_a_ctc_path() -> None:
    from models.ctc_alignment import token_starts

    aligned = torch.tensor([[0, 5, 5, 0, 5, 7, 0], [3, 3, 4, 0, 0, 0, 0]])
    assert token_starts(aligned, 0).to(torch.int64).tolist() == [[0, 1, 0, 0, 1, 1, 0], [1, 0, 1, 0, 0, 0, 0]]


def test_alignment_loss_steps_at_ctc_spikes_and_leaves_the_encoder_alone() -> None:
    torch.manual_seed(0)
    model = Paraformer(ParaformerConfig(vocab_size=10, d_model=16, heads=2, ffn_dim=32, encoder_layers=1,
                                        decoder_layers=1, ctc_weight=0.3, align_weight=1.0, dropout=0.0))
    # log-probs whose best path for the reference [5, 7] is: blank, 5, 5, blank, 7, blank (6 frames)
    path = [0, 5, 5, 0, 7, 0]
    lp = torch.full((1, 6, 10), -9.0)
    for t, k in enumerate(path):
        lp[0, t, k] = -0.01
    alphas = torch.tensor([[0.1, 0.8, 0.2, 0.0, 0.9, 0.7]])
    model.predictor.forward = lambda enc, mask: alphas  # type: ignore[method-assign]
    enc = torch.randn(1, 6, 16, requires_grad=True)
    loss = model.alignment_loss(enc, torch.ones(1, 6, dtype=torch.bool), lp, torch.tensor([6]),
                                torch.tensor([[5, 7]]), torch.tensor([2]))
    # spikes where 5 and 7 start (frames 1 and 4) and the end slot on the last frame: targets 0 1 0 0 1 1
    target = [0.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    expected = -sum(np.log(a) if y else np.log(1 - a) for a, y in zip(alphas[0].tolist(), target, strict=True)) / 6
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # through the real predictor: gradients reach the predictor only
    del model.predictor.forward
    x = torch.randn(2, 30, 560)
    out = model(x, torch.tensor([30, 22]), torch.tensor([[5, 6, 7], [8, 9, -1]]), torch.tensor([3, 2]))
    assert out.align > 0
    model.zero_grad()
    model.alignment_loss(*model.encode(x, torch.tensor([30, 22]))[:2],
                         torch.log_softmax(torch.randn(2, 30, 10), -1), torch.tensor([30, 22]),
                         torch.tensor([[5, 6, 7], [8, 9, -1]]), torch.tensor([3, 2])).backward()
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in model.encoder.parameters())
    grad = model.predictor.out.weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0
