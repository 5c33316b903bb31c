"""``simulsub export``: every model family to the formats its runtime runs, each checked against its source.

Sources are the training work directories (the averaged epoch checkpoints, as the bundled models were made);
outputs go under one folder, each a complete runtime directory that ``--model`` / ``--asr-model`` /
``--llm-model`` load:

========== =============================================== ==================================================
family     directories written                             checked by (N validation sentences / utterances)
========== =============================================== ==================================================
marian     ``marian-en-de-int8`` / ``-float16`` (CTranslate2) CTranslate2 greedy vs transformers greedy
nat        ``nat-en-de`` (ONNX fp32 + int8), ``-fp16``       onnxruntime one pass vs PyTorch one pass
waitk      ``waitk-en-de`` (ONNX fp32 + int8), ``-fp16``     wait-k (k = 3) with onnxruntime vs PyTorch steps
paraformer ``paraformer-en`` (fp32 + int8), ``-fp16``       offline onnxruntime transcripts vs PyTorch
llm        ``llm-en-de`` (ONNX fp32 + int8), ``-bf16`` (HF)  the read/write loop on each vs the float32 source
========== =============================================== ==================================================

fp16 graphs keep float32 inputs/outputs (``keep_io_types``) and are meant for the CUDA provider; they run on the
CPU too, which is how they are checked here. Each check reports the share of items whose output is identical
to the source model's and the BLEU of the exported outputs against the source model's outputs (100 = all
identical); a variant below its threshold fails the export.

Each family goes through :mod:`models.export_registry`: its ``check`` (``check_<family>`` here) loads the source,
and its exporter class (``export(output_dir, *, quantization, force)``) writes each directory.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sacrebleu

from models.export_registry import checked_families, get_exporter

logger = logging.getLogger(__name__)

# minimum BLEU of a variant's outputs against the source model's outputs
THRESHOLDS = {"fp32": 97.0, "float32": 97.0, "fp16": 90.0, "float16": 90.0, "bf16": 80.0, "int8": 60.0}


@dataclass(frozen=True)
class ExportCheck:
    """One exported variant and how closely it reproduces its source model."""

    family: str
    variant: str
    path: str
    items: int
    identical: float  # share of items with exactly the source model's output
    bleu_vs_source: float
    threshold: float

    @property
    def passed(self) -> bool:
        return self.bleu_vs_source >= self.threshold


@dataclass
class ExportOptions:
    """Where sources are and where exports go; ``sentences`` = validation items per variant."""

    out_dir: Path = Path("work/export")
    work_root: Path = Path("work")
    data_dir: Path = field(default_factory=lambda: _multi30k())
    spm_model: Path = Path("models/pretrained/marian-en-de/source.spm")
    families: tuple[str, ...] = field(default_factory=checked_families)
    sentences: int = 50


def _multi30k() -> Path:
    from models.text.data import multi30k_dir

    return multi30k_dir()


def compare(family: str, variant: str, path: Path, source_out: list[str], variant_out: list[str]) -> ExportCheck:
    """The check record of ``variant_out`` against ``source_out`` (same items, same order)."""
    same = sum(a == b for a, b in zip(source_out, variant_out, strict=True))
    bleu = 100.0 if source_out == variant_out else float(
        sacrebleu.corpus_bleu(variant_out, [source_out], tokenize="13a").score)
    return ExportCheck(family, variant, str(path), len(source_out), same / max(1, len(source_out)), bleu,
                       THRESHOLDS[variant])


def onnx_to_fp16(src: Path, dst: Path) -> Path:
    """A float16 copy of an ONNX graph with float32 inputs/outputs (``keep_io_types``)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, disable_shape_infer=False)
    onnx.save(model, str(dst))
    return dst


def fp16_directory(fp32_dir: Path, dst: Path, graphs: list[str]) -> Path:
    """``dst`` = ``fp32_dir`` with each of ``graphs`` in float16 under its own name, int8 graphs left out."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for f in fp32_dir.iterdir():
        if f.is_file() and f.suffix != ".onnx":
            shutil.copy(f, dst / f.name)
    for g in graphs:
        onnx_to_fp16(fp32_dir / g, dst / g)
    return dst


# -- per family: (source outputs, variants) -----------------------------------------------------------------
def export_nat(model: Any, spm_model: Path, out: Path, sources: list[str]) -> list[ExportCheck]:
    """NAT → ONNX fp32 + int8 (``out/nat-en-de``) and fp16 (``-fp16``), checked against PyTorch."""
    import sentencepiece as spm
    import torch

    from models.nat.export import NatExporter
    from models.nat.model import greedy_decode
    from models.nat.runtime import EOS_ID, NatTranslator

    sp = spm.SentencePieceProcessor(model_file=str(spm_model))
    with torch.no_grad():
        ref = [sp.decode(greedy_decode(model.eval(), torch.tensor([[*sp.encode(s), EOS_ID]]))[0]) for s in sources]
    base = NatExporter(model.eval(), spm_model).export(out / "nat-en-de", quantization="int8", force=True)
    half = fp16_directory(base, out / "nat-en-de-fp16", ["model.onnx"])
    checks = []
    for variant, path, quantized in (("fp32", base, False), ("int8", base, True), ("fp16", half, False)):
        tr = NatTranslator(path, quantized=quantized, use_shortlist=False, providers=["CPUExecutionProvider"])
        checks.append(compare("nat", variant, path, ref, [tr.translate_sentence(s) for s in sources]))
    return checks


def export_waitk(model: Any, spm_model: Path, out: Path, sources: list[str], k: int = 3) -> list[ExportCheck]:
    """wait-k → ONNX step graphs fp32 + int8 and fp16, checked through the wait-k policy against PyTorch."""
    import sentencepiece as spm

    from models.waitk.export import WaitkExporter
    from models.waitk.runtime import WaitkOnnx
    from models.waitk.torch_step import TorchIncremental
    from models.waitk.train import translate_waitk

    sp = spm.SentencePieceProcessor(model_file=str(spm_model))
    ref = [translate_waitk(TorchIncremental(model.eval(), sp), s, k) for s in sources]
    base = WaitkExporter(model.eval(), spm_model).export(out / "waitk-en-de", quantization="int8", force=True)
    half = fp16_directory(base, out / "waitk-en-de-fp16", ["encoder.onnx", "decoder.onnx"])
    checks = []
    for variant, path, quantized in (("fp32", base, False), ("int8", base, True), ("fp16", half, False)):
        rt = WaitkOnnx(path, quantized=quantized, providers=["CPUExecutionProvider"])
        checks.append(compare("waitk", variant, path, ref, [translate_waitk(rt, s, k) for s in sources]))  # type: ignore[arg-type]
    return checks


def export_marian(model: Any, spm_model: Path, out: Path, sources: list[str]) -> list[ExportCheck]:
    """AR → CTranslate2 int8 and float16, greedy outputs checked against transformers' greedy search."""
    import sentencepiece as spm
    import torch

    from models.marian.export import MarianExporter
    from models.marian.runtime import CT2Translator, DecodeOptions

    sp = spm.SentencePieceProcessor(model_file=str(spm_model))
    model = model.eval()
    ref = []
    limit = min(256, int(model.config.max_position_embeddings) - 1)  # what CT2Translator allows
    with torch.no_grad():
        for s in sources:
            ids = torch.tensor([[*sp.encode(s), 1]])
            gen = model.generate(input_ids=ids, num_beams=1, do_sample=False, max_new_tokens=limit)
            ref.append(sp.decode([int(t) for t in gen[0].tolist() if t < sp.get_piece_size() and t > 1]))
    limits = {"max_source_tokens": int(model.config.max_position_embeddings)}
    exporter = MarianExporter(model, spm_model, metadata=limits)
    checks = []
    for q in ("int8", "float16"):
        path = exporter.export(out / f"marian-en-de-{q}", quantization=q, force=True)
        tr = CT2Translator(path, intra_threads=1)
        checks.append(compare("marian", q, path, ref, tr.translate(sources, DecodeOptions(beam_size=1))))
    return checks


def export_paraformer(model: Any, tokens: Any, cmvn: Any, out: Path, wavs: list[Any], *,
                      spm_model: Path | None = None) -> list[ExportCheck]:
    """Paraformer → the FunASR ONNX directory (fp32 + int8) and fp16, offline transcripts checked against PyTorch.

    ``tokens``: the model's ``TokenList``; ``cmvn``: its ``Cmvn``; ``wavs``: 16 kHz float utterances to check on.
    """
    import torch

    from models.asr.decoding import DecodeOptions
    from models.asr.frontend import FrontendOptions
    from models.asr.paraformer.export import ParaformerExporter
    from models.asr.paraformer.train import write_model_card
    from models.asr.runtime import ParaformerOnnx

    base = ParaformerExporter(model.eval(), tokens, cmvn, FrontendOptions(), spm_model=spm_model).export(
        out / "paraformer-en", quantization="int8", force=True)
    write_model_card(base, model, [], average_last=0)
    half = fp16_directory(base, out / "paraformer-en-fp16", ["model.onnx", "stream_encoder.onnx",
                                                               "stream_decoder.onnx"])
    greedy = DecodeOptions.greedy()  # the graphs are compared, not the beam search over their outputs
    fp32 = ParaformerOnnx(base, quantized=False, decoding=greedy)
    ref = []
    with torch.no_grad():
        for w in wavs:
            feats = torch.from_numpy(fp32.features(w))[None]
            logp, num = model.infer(feats, torch.tensor([feats.shape[1]]))
            ref.append(fp32.decode_logits(logp[0, : int(num[0])].numpy(), drop_end_slot=True).text)
    checks = []
    for variant, path, quantized in (("fp32", base, False), ("int8", base, True), ("fp16", half, False)):
        rt = ParaformerOnnx(path, quantized=quantized, decoding=greedy)
        checks.append(compare("paraformer", variant, path, ref, [rt.transcribe(w) for w in wavs]))
    return checks


def export_llm(hf_dir: Path, out: Path, sources: list[str], level: str = "high") -> list[ExportCheck]:
    """The LLM as ONNX int8 and fp32 graphs with the KV cache as input/output (``llm-en-de``, the bundled form)
    and a bfloat16 Hugging Face directory; the read/write loop on each checked against the float32 source."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from models.llm.onnx_export import ONNX_FP32, ONNX_INT8, LlmExporter
    from models.llm.onnx_runtime import OnnxInterleavedLM
    from models.llm.runtime import HfInterleavedLM
    from streaming.policies.llm import InterleavedLM, LlmPolicy
    from streaming.types import SourceState

    def run(lm: InterleavedLM) -> list[str]:
        policy = LlmPolicy(lm, level)
        outs = []
        for s in sources:
            policy.reset()
            words = tuple(s.split())
            st = None
            for i in range(1, len(words) + 1):
                st = policy.update(SourceState(words[:i], float(i), finished=i == len(words)))
            outs.append(" ".join(st.tokens) if st else "")
        return outs

    ref = run(HfInterleavedLM(hf_dir))
    onnx_dir = out / "llm-en-de"
    LlmExporter(hf_dir, keep_fp32=True).export(onnx_dir, quantization="int8", force=True)
    checks = [compare("llm", variant, onnx_dir / graph, ref, run(OnnxInterleavedLM(onnx_dir, graph_name=graph)))
              for variant, graph in (("fp32", ONNX_FP32), ("int8", ONNX_INT8))]
    path = out / "llm-en-de-bf16"
    model: Any = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32)
    model.to(torch.bfloat16).save_pretrained(str(path))
    AutoTokenizer.from_pretrained(str(hf_dir)).save_pretrained(str(path))
    checks.append(compare("llm", "bf16", path, ref, run(HfInterleavedLM(path))))
    return checks


# -- sources from the work directories ---------------------------------------------------------------------
def _average(work: Path, n: int) -> dict[str, Any]:
    from models.marian.export import average_state_dicts

    ckpts = sorted(work.glob("epoch*.pt"))[-n:]
    if not ckpts:
        raise FileNotFoundError(f"{work} has no epoch checkpoints: train it first (simulsub train …)")
    return average_state_dicts(ckpts)


def _config(work: Path) -> dict[str, Any]:
    import torch

    ckpts = sorted(work.glob("epoch*.pt"))
    if not ckpts:
        raise FileNotFoundError(f"{work} has no epoch checkpoints: train it first (simulsub train …)")
    ckpt = ckpts[-1]
    return dict(torch.load(ckpt, map_location="cpu", weights_only=False)["config"])


def _sources(opts: ExportOptions) -> list[str]:
    """The validation sentences the text families are checked on."""
    from models.text.data import load_split

    return list(load_split(opts.data_dir, "val", "en", "de").source[: opts.sentences])


def check_marian(opts: ExportOptions) -> list[ExportCheck]:
    """``work_root/marian-en-de`` (the last 5 epochs averaged) → :func:`export_marian`."""
    from models.marian.export import MarianArch, build_model

    sources = _sources(opts)
    work = opts.work_root / "marian-en-de"
    arch = MarianArch(**json.loads((work / "arch.json").read_text(encoding="utf-8")))
    ar = build_model(arch)
    ar.load_state_dict(_average(work, 5))
    return export_marian(ar, work / "spm.model", opts.out_dir, sources)


def check_nat(opts: ExportOptions) -> list[ExportCheck]:
    """``work_root/nat-en-de`` (the last 3 epochs averaged) → :func:`export_nat`."""
    from models.nat.model import ModelConfig, NATModel

    sources = _sources(opts)
    work = opts.work_root / "nat-en-de"
    nat = NATModel(ModelConfig(**_config(work)))
    nat.load_state_dict(_average(work, 3))
    return export_nat(nat, opts.spm_model, opts.out_dir, sources)


def check_waitk(opts: ExportOptions) -> list[ExportCheck]:
    """``work_root/waitk-en-de`` (the last 3 epochs averaged) → :func:`export_waitk`."""
    from models.waitk.model import WaitkConfig, WaitkModel

    sources = _sources(opts)
    work = opts.work_root / "waitk-en-de"
    wk = WaitkModel(WaitkConfig(**_config(work)))
    wk.load_state_dict(_average(work, 3))
    return export_waitk(wk, opts.spm_model, opts.out_dir, sources)


def check_paraformer(opts: ExportOptions) -> list[ExportCheck]:
    """``work_root/paraformer`` (the last 3 epochs averaged) → :func:`export_paraformer` on the validation audio."""
    import numpy as np

    from models.asr.audio import load_audio
    from models.asr.frontend import Cmvn
    from models.asr.paraformer.tokenizer import AsrTokenizer
    from models.asr.paraformer.train import average_checkpoints

    _sources(opts)  # checked first, as for every family: the audio is looked for beside the text data
    work = opts.work_root / "paraformer"
    asr = average_checkpoints(work, 3)
    clips = sorted((opts.data_dir.parent / "speech").rglob("*.wav"))[: opts.sentences]
    if not clips:
        raise FileNotFoundError("no validation audio (../shared/data/speech/**/*.wav)")
    d = np.load(work / "cmvn.npz")
    return export_paraformer(asr, AsrTokenizer(work / "tokens.model").token_list, Cmvn(d["shift"], d["scale"]),
                             opts.out_dir, [load_audio(c) for c in clips], spm_model=work / "tokens.model")


def check_llm(opts: ExportOptions) -> list[ExportCheck]:
    """``work_root/llm-en-de/hf`` → :func:`export_llm` on half as many sentences (at least one)."""
    sources = _sources(opts)
    hf_dir = opts.work_root / "llm-en-de" / "hf"
    if not (hf_dir / "config.json").is_file():
        raise FileNotFoundError(f"{hf_dir} does not exist: simulsub train llm-simt --export writes it")
    return export_llm(hf_dir, opts.out_dir, sources[: max(1, opts.sentences // 2)])


def run_family(family: str, opts: ExportOptions) -> list[ExportCheck]:
    """Load ``family``'s source from ``opts.work_root`` and export it (its registered check); FileNotFoundError when
    the source is missing, :class:`models.export_registry.UnknownFamilyError` for an unregistered family."""
    return get_exporter(family).run_check(opts)


def export_all(opts: ExportOptions, progress: Callable[[str], None] | None = None) -> list[ExportCheck]:
    """Export every family in ``opts.families`` whose source exists; writes ``out_dir/export.json``."""
    checks: list[ExportCheck] = []
    for family in opts.families:
        if progress:
            progress(family)
        checks.extend(run_family(family, opts))
    write_report(checks, opts.out_dir)
    return checks


def write_report(checks: list[ExportCheck], out_dir: Path) -> Path:
    """``out_dir/export.json``: every check with its verdict."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "export.json"
    path.write_text(json.dumps([{**asdict(c), "passed": c.passed} for c in checks], indent=2) + "\n",
                    encoding="utf-8")
    return path
