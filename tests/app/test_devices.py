"""``--device auto|cpu|cuda``: resolution, the message when CUDA is asked for and absent, providers passed on."""

from __future__ import annotations

import pytest

from app import devices
from app.cli import main
from app.errors import UserError


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "onnxruntime_has_cuda", lambda: False)
    monkeypatch.setattr(devices, "ctranslate2_cuda_devices", lambda: 0)


@pytest.fixture
def with_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "onnxruntime_has_cuda", lambda: True)
    monkeypatch.setattr(devices, "ctranslate2_cuda_devices", lambda: 1)


def test_auto_falls_back_to_cpu_and_cuda_request_fails_clearly(no_cuda: None) -> None:
    assert devices.resolve_device("auto") == "cpu"
    assert devices.resolve_device("cpu") == "cpu"
    with pytest.raises(devices.DeviceUnavailableError) as e:
        devices.resolve_device("cuda")
    msg = str(e.value)
    assert "onnxruntime-gpu" in msg and "CTranslate2 sees no CUDA device" in msg and "--device cpu" in msg
    with pytest.raises(UserError, match="unknown device"):
        devices.resolve_device("tpu")


def test_cuda_is_used_when_both_runtimes_have_it(with_cuda: None) -> None:
    assert devices.resolve_device("auto") == "cuda"
    assert devices.resolve_device("cuda") == "cuda"
    assert devices.onnx_providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert devices.onnx_providers("cpu") == ["CPUExecutionProvider"]


def test_only_one_runtime_with_cuda_is_not_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "onnxruntime_has_cuda", lambda: True)
    monkeypatch.setattr(devices, "ctranslate2_cuda_devices", lambda: 0)
    assert devices.resolve_device("auto") == "cpu"
    with pytest.raises(devices.DeviceUnavailableError, match="CTranslate2"):
        devices.resolve_device("cuda")


@pytest.mark.parametrize("command", [["translate"], ["replay-text", "--source", "x"], ["transcribe", "x"]])
def test_cli_device_cuda_without_gpu_is_a_one_line_error(no_cuda: None, command: list[str], tmp_path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    src = tmp_path / "x"
    src.write_text("A man walks.\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("A man walks.\n"))
    monkeypatch.setenv("SIMULSUB_ASR_MODEL", str(tmp_path / "no-asr"))
    code = main([*command, "--device", "cuda"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "--device cuda is not available" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_real_machine_answers_without_error() -> None:
    devices.onnxruntime_has_cuda.cache_clear()
    devices.ctranslate2_cuda_devices.cache_clear()
    assert devices.resolve_device("auto") in ("cpu", "cuda")
    assert (devices.cuda_missing_reason() is None) == (devices.resolve_device("auto") == "cuda")
