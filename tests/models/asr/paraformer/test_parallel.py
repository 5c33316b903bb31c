"""Gradient averaging across data-parallel workers when their steps touch different parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")


def _worker(opts: dict[str, Any], rank: int, world: int) -> None:
    from models.asr.paraformer.parallel import average_gradients

    model = torch.nn.ModuleDict({"a": torch.nn.Linear(3, 2), "b": torch.nn.Embedding(4, 2),
                                 "c": torch.nn.Linear(2, 1)})
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
    x = torch.ones(1, 3) * (rank + 1)
    loss = model["a"](x).sum()
    if rank == 0:  # only this worker's batch uses the embedding (as glancing may); nobody uses "c"
        loss = loss + model["b"](torch.tensor([1])).sum()
    loss.backward()
    flag = average_gradients(model, world, float(rank == 1))
    import logging

    logging.getLogger("tests.worker").info("worker %d averaged", rank)
    torch.save({"grads": {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()},
                "flag": flag}, Path(opts["out"]) / f"rank{rank}.pt")


def test_a_parameter_without_gradient_in_one_worker_is_averaged_as_zero(tmp_path: Path, capfd: Any) -> None:
    import logging

    from models.asr.paraformer.parallel import spawn_workers

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    try:
        spawn_workers(_worker, {"out": str(tmp_path)}, 2)
    finally:
        root.setLevel(level)
    err = capfd.readouterr().err
    assert "[worker 0]: worker 0 averaged" in err and "[worker 1]: worker 1 averaged" in err  # launcher's level
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["flag"] == r1["flag"] == 1.0
    for name in ("a.weight", "a.bias", "b.weight"):
        assert torch.equal(r0["grads"][name], r1["grads"][name])
    assert torch.allclose(r0["grads"]["a.weight"], torch.full((2, 3), 1.5))  # mean of inputs 1 and 2
    expected = torch.zeros(4, 2)
    expected[1] = 0.5  # one worker's gradient of 1, averaged with the other's zeros
    assert torch.equal(r1["grads"]["b.weight"], expected)
    assert r0["grads"]["c.weight"] is None and r1["grads"]["c.weight"] is None  # nobody's: the optimiser skips it
