"""models.onnx_session: the one provider rule, the session options, and ModelDirError for unloadable graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models import onnx_session
from models.onnx_session import CPU_PROVIDER, CUDA_PROVIDER, open_session, session_providers
from streaming.errors import ModelDirError

onnx = pytest.importorskip("onnx")


def identity_graph(path: Path) -> Path:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_provider_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    assert session_providers("cpu") == [CPU_PROVIDER]
    assert session_providers("cuda") == [CUDA_PROVIDER, CPU_PROVIDER]
    monkeypatch.setattr(onnx_session, "onnxruntime_has_cuda", lambda: False)
    assert session_providers("auto") == session_providers() == [CPU_PROVIDER]
    monkeypatch.setattr(onnx_session, "onnxruntime_has_cuda", lambda: True)
    assert session_providers("auto") == [CUDA_PROVIDER, CPU_PROVIDER]
    with pytest.raises(ValueError, match="unknown device"):
        session_providers("tpu")


def test_app_devices_uses_the_same_rule() -> None:
    from app import devices

    assert devices.onnxruntime_has_cuda is onnx_session.onnxruntime_has_cuda
    for device in ("cpu", "cuda"):
        assert devices.onnx_providers(device) == session_providers(device)


def test_open_session_runs_on_the_cpu_with_the_shared_options(tmp_path: Path) -> None:
    session = open_session(identity_graph(tmp_path / "id.onnx"), threads=2, device="cpu")
    assert session.get_providers() == [CPU_PROVIDER]
    opts = session.get_session_options()
    assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (2, 1)
    x = np.arange(3, dtype=np.float32)
    assert np.array_equal(session.run(None, {"x": x})[0], x)
    explicit = open_session(tmp_path / "id.onnx", providers=[CPU_PROVIDER])
    assert explicit.get_providers() == [CPU_PROVIDER]


def test_unloadable_graphs_raise_model_dir_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a graph\n" * 10)
    with pytest.raises(ModelDirError, match=r"onnxruntime cannot load .*bad\.onnx: ") as e:
        open_session(bad, device="cpu")
    assert "\n" not in str(e.value)
    with pytest.raises(ModelDirError, match=r"missing\.onnx: no such file"):
        open_session(tmp_path / "missing.onnx", device="cpu")
