"""Where a NAT call spends its time: encoder, upsampling, decoder, output layer, and per-call overhead.

onnxruntime's profiler times every graph node; nodes are grouped by the module path the exporter gives them
(``/encoder.N/…``, ``/up/…``, ``/decoder.N/…``, the rest = output layer: shortlist gather, projection, argmax,
shape glue). The profiler itself slows every node down, so the groups are reported as SHARES of the profiled
``session.run`` wall time (overhead = the share outside any kernel: dispatch, allocation, input/output
conversion), and the time per call is measured separately in an unprofiled session. ``python`` is the rest of a
FReTNA update (SentencePiece, shortlist lookup, CTC collapse).

    .venv/bin/python -m benchmarks.nat_profile [--model DIR] [--sentences 100]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from app.profiles import DEFAULT_NAT_MODEL
from models.nat.runtime import NatTranslator, ctc_collapse_np
from models.text.data import multi30k_dir, read_lines

GROUPS = ("encoder", "upsample", "decoder", "output layer")


def node_group(name: str) -> str:
    """The module group of an exported node name."""
    if name.startswith(("/encoder", "/embed", "/enc_norm")):
        return "encoder"
    if name.startswith("/up/"):
        return "upsample"
    if name.startswith(("/decoder", "/dec_norm")):
        return "decoder"
    return "output layer"


@dataclass
class CallProfile:
    """Shares (%) of a profiled call by group and overhead; unprofiled µs per call; python µs per update."""

    calls: int
    group_share: dict[str, float]
    overhead_share: float
    run_us: float
    python_us: float
    nodes: int

    def as_row(self) -> dict[str, float]:
        return {**{f"{g}_pct": round(self.group_share.get(g, 0.0), 1) for g in GROUPS},
                "overhead_pct": round(self.overhead_share, 1), "run_us": round(self.run_us, 1),
                "python_us": round(self.python_us, 1), "nodes": self.nodes}


def prefixes(sentences: list[str]) -> list[str]:
    """Every word prefix of every sentence: what FReTNA translates, call by call."""
    return [" ".join(s.split()[:j]) for s in sentences for j in range(1, len(s.split()) + 1)]


def profile(model_dir: Path, texts: list[str], *, quantized: bool = True, shortlist: bool = True) -> CallProfile:
    """Profile one NAT configuration on ``texts`` (one call each), on one thread."""
    tr = NatTranslator(model_dir, quantized=quantized, threads=1, use_shortlist=shortlist)
    inputs = []
    t0 = time.perf_counter()
    for t in texts:
        ids = tr.encode(t)
        vocab = tr.all_classes if tr.shortlist is None else tr.shortlist.for_source(ids)
        inputs.append((np.asarray([ids], dtype=np.int64), vocab))
    python_us = (time.perf_counter() - t0) / len(texts) * 1e6
    onnx_name = "model_int8.onnx" if quantized else "model.onnx"
    plain = ort.SessionOptions()
    plain.intra_op_num_threads = 1
    plain.inter_op_num_threads = 1
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(model_dir / onnx_name), plain, providers=["CPUExecutionProvider"])
    for src, vocab in inputs[:20]:  # warm-up
        sess.run(["tokens"], {"src_ids": src, "vocab_ids": vocab})
    t_py = 0.0
    t0 = time.perf_counter()
    for src, vocab in inputs:
        (tok,) = sess.run(["tokens"], {"src_ids": src, "vocab_ids": vocab})
    run_us = (time.perf_counter() - t0) / len(inputs) * 1e6
    t1 = time.perf_counter()
    for _ in range(len(inputs)):
        ctc_collapse_np(tok[0], tr.blank_id)
    t_py = time.perf_counter() - t1
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "nat")
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        prof = ort.InferenceSession(str(model_dir / onnx_name), so, providers=["CPUExecutionProvider"])
        for src, vocab in inputs:
            prof.run(["tokens"], {"src_ids": src, "vocab_ids": vocab})
        trace = json.loads(Path(prof.end_profiling()).read_text())
    per_group: dict[str, float] = defaultdict(float)
    names = set()
    run_total = 0.0
    for ev in trace:
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            name = ev["name"][: -len("_kernel_time")]
            names.add(name)
            per_group[node_group(name)] += float(ev["dur"])
        elif ev.get("cat") == "Session" and ev.get("name") == "model_run":
            run_total += float(ev["dur"])
    kernels = sum(per_group.values())
    run_total = max(run_total, kernels)
    return CallProfile(calls=len(inputs), group_share={g: 100.0 * v / run_total for g, v in per_group.items()},
                       overhead_share=100.0 * (run_total - kernels) / run_total, run_us=run_us,
                       python_us=python_us + t_py / len(inputs) * 1e6, nodes=len(names))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_NAT_MODEL)
    ap.add_argument("--split", default="test_2016_flickr")
    ap.add_argument("--sentences", type=int, default=100)
    args = ap.parse_args()
    texts = prefixes(read_lines(multi30k_dir() / f"{args.split}.en")[: args.sentences])
    for quantized in (True, False):
        for shortlist in (True, False):
            p = profile(args.model, texts, quantized=quantized, shortlist=shortlist)
            label = f"{'int8' if quantized else 'fp32'} {'shortlist' if shortlist else 'all pieces'}"
            print(label, json.dumps(p.as_row()))


if __name__ == "__main__":
    main()
