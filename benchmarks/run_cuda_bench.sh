#!/usr/bin/env bash
# Run `simulsub bench` on a CUDA machine: a GPU venv (onnxruntime-gpu instead of onnxruntime; CTranslate2's PyPI
# wheels include CUDA), a check that both runtimes see the GPU, then the full benchmark on the GPU and, for the
# ratios, the same benchmark on the CPU of the same machine.
#
#   bash benchmarks/run_cuda_bench.sh [--quick]
#
# Writes BENCHMARKS-cuda.md and BENCHMARKS-cuda-cpu.md (each with its NAME-results/ folder of plots and JSON).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-gpu}
if [ ! -x "$VENV/bin/simulsub" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --upgrade pip
    "$VENV/bin/pip" install "torch==2.13.0"
    "$VENV/bin/pip" install -e ".[gpu,train,dev]"
fi
"$VENV/bin/python" - <<'PY'
import ctranslate2, onnxruntime
providers = onnxruntime.get_available_providers()
print("onnxruntime providers:", providers, "| CTranslate2 CUDA devices:", ctranslate2.get_cuda_device_count())
if "CUDAExecutionProvider" not in providers or ctranslate2.get_cuda_device_count() == 0:
    raise SystemExit("CUDA is not usable here: see the message above")
PY
"$VENV/bin/simulsub" bench --device cuda --out BENCHMARKS-cuda.md "$@"
"$VENV/bin/simulsub" bench --device cpu --out BENCHMARKS-cuda-cpu.md "$@"
