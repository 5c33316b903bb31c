"""Train (or fine-tune) a causal LM on interleaved read/write data (``simulsub train llm-simt``), resumable.

Data: ``simulsub distill`` output (the AR teacher's translation of every sentence and of each of its word
prefixes) cut into chunks (:mod:`models.llm.interleave`). Each epoch every training sentence appears once, at
a latency level drawn for that sentence and epoch (low / medium / high / offline with equal odds), so the
model sees all levels without four times the compute. The loss covers everything after the prompt: source
tokens (it learns to expect more source), ``<|end-of-read|>`` (when to stop reading), the target and
``<|end-of-write|>`` (when to stop writing), as in EAST's supervised fine-tuning.

Runs on CUDA when present (``--device auto``), else on the CPU with bfloat16 autocast where the CPU has it.
Checkpoints (``epochNN.pt``) live in ``work_dir``; the same command resumes. ``finalize`` averages the last
epochs and writes a Hugging Face directory (``work_dir/hf``, float32); a Marian model (our default) is then
exported to ONNX int8 with its KV cache as graph input/output (:mod:`models.llm.onnx_export`; the bundled form,
runs without torch), any other model is written as bfloat16 safetensors.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sacrebleu
import torch
from tqdm import tqdm

from models.llm.build import build_default, load_base
from models.llm.interleave import LATENCY_LEVELS, OFFLINE, chunk_pair
from models.llm.tokens import EOR, control_ids, encode_segment, prompt_ids
from models.marian.batching import make_batches
from models.marian.distill import read_distilled
from models.marian.export import average_state_dicts
from models.text.data import load_split, multi30k_dir
from models.training import cpu_has_bf16, guard_options, inverse_sqrt_lr, resume_last_epoch, save_epoch

logger = logging.getLogger(__name__)

TRAIN_LEVELS = (*LATENCY_LEVELS, OFFLINE)


@dataclass
class LlmTrainOptions:
    """Everything that determines a run (saved in ``work_dir/options.json``)."""

    distill_file: Path = Path("work/distill/distill.jsonl")
    spm_model: Path = Path("models/pretrained/marian-en-de/source.spm")
    work_dir: Path = Path("work/llm-en-de")
    data_dir: Path = field(default_factory=multi30k_dir)
    init_from: str = "work/marian-en-de"  # AR work directory for the default model
    base: str = ""  # a Hugging Face causal-LM directory to fine-tune instead of the default model
    epochs: int = 6
    max_tokens: int = 6000
    lr: float = 5e-4
    warmup_steps: int = 400
    clip_norm: float = 1.0
    limit: int = 0  # use only the first N sentences (smoke tests)
    val_limit: int = 200
    val_level: str = "high"
    seed: int = 1
    threads: int = 2
    device: str = "cpu"
    bf16: bool = True

    def to_json(self) -> dict[str, object]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


class ExampleEncoder:
    """Token ids of interleaved examples (control ids and prompts looked up once per tokenizer)."""

    def __init__(self, tok: Any) -> None:
        self.tok = tok
        self.ctl = control_ids(tok)
        self.prompts = {level: prompt_ids(tok, level) for level in TRAIN_LEVELS}

    def __call__(self, source: str, full: str, prefixes: list[str], level: str) -> tuple[list[int], int]:
        return encode_example(self.tok, source, full, prefixes, level, ctl=self.ctl, prompt=self.prompts[level])


def encode_example(tok: Any, source: str, full: str, prefixes: list[str], level: str, *, ctl: Any = None,
                   prompt: list[int] | None = None) -> tuple[list[int], int]:
    """Token ids of one interleaved example and the prompt length (no loss on the prompt); ([], 0) if empty."""
    chunks = chunk_pair(source, full, prefixes, level)
    if not chunks:
        return [], 0
    ctl = ctl or control_ids(tok)
    ids = list(prompt) if prompt is not None else prompt_ids(tok, level)
    n_prompt = len(ids)
    first_word = True
    for i, c in enumerate(chunks):
        for w in c.source:
            ids.extend(encode_segment(tok, w, first=first_word))
            first_word = False
        ids.append(ctl.eor)
        ids.extend(encode_segment(tok, " ".join(c.target), first=i == 0))
        ids.append(ctl.eow)
    return ids, n_prompt


def epoch_examples(tok: Any, records: list[Any], epoch: int, seed: int) -> tuple[list[list[int]], list[int]]:
    """One example per sentence at a level drawn per (sentence, epoch)."""
    seqs: list[list[int]] = []
    prompts: list[int] = []
    encode = ExampleEncoder(tok)
    for rec in records:
        level = random.Random(seed * 1_000_003 + epoch * 7919 + rec.index).choice(TRAIN_LEVELS)
        ids, n = encode(rec.source, rec.full, rec.prefixes, level)
        if ids:
            seqs.append(ids)
            prompts.append(n)
    return seqs, prompts


def next_token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting token t + 1 from positions ≤ t (labels -100 are ignored).

    Computed here rather than by the model: some causal-LM classes (the BART/Marian family) compare logits with
    unshifted labels when given ``labels``, which would teach the model to copy its input.
    """
    return torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                             labels[:, 1:].reshape(-1), ignore_index=-100)


def collate(idx: list[int], seqs: list[list[int]], prompts: list[int], pad: int) -> dict[str, torch.Tensor]:
    n = max(len(seqs[i]) for i in idx)
    ids = torch.full((len(idx), n), pad, dtype=torch.long)
    labels = torch.full((len(idx), n), -100, dtype=torch.long)
    mask = torch.zeros((len(idx), n), dtype=torch.long)
    for r, i in enumerate(idx):
        s = torch.tensor(seqs[i])
        ids[r, : len(s)] = s
        labels[r, prompts[i] : len(s)] = s[prompts[i] :]
        mask[r, : len(s)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def simultaneous_bleu(model_dir: Path, sources: list[str], refs: list[str], level: str, device: str) -> float:
    """BLEU of the EAST read/write loop (word by word, KV cache) with the model saved in ``model_dir``."""
    from models.llm.runtime import HfInterleavedLM
    from streaming.policies.llm import LlmPolicy
    from streaming.types import SourceState

    policy = LlmPolicy(HfInterleavedLM(model_dir, device=device), level)
    hyps = []
    for src in sources:
        policy.reset()
        words = tuple(src.split())
        for i in range(1, len(words) + 1):
            state = policy.update(SourceState(words[:i], float(i), finished=i == len(words)))
        hyps.append(" ".join(state.tokens))
    return float(sacrebleu.corpus_bleu(hyps, [refs]).score)


def _initial(opts: LlmTrainOptions) -> tuple[Any, Any]:
    if opts.base:
        return load_base(Path(opts.base))
    return build_default(Path(opts.init_from), opts.spm_model)


def train(opts: LlmTrainOptions) -> Path:
    """Run (or resume) training; returns ``work_dir``."""
    torch.set_num_threads(opts.threads)
    work = opts.work_dir
    work.mkdir(parents=True, exist_ok=True)
    guard_options(work, opts.to_json(), may_change=("epochs", "threads", "device"))
    if not opts.distill_file.is_file():
        raise FileNotFoundError(f"{opts.distill_file} does not exist: run `simulsub distill` first")
    records = list(read_distilled(opts.distill_file))
    if opts.limit:
        records = records[: opts.limit]
    model, tok = _initial(opts)
    tok.save_pretrained(str(work / "tokenizer"))
    (work / "hf_config.json").write_text(model.config.to_json_string(), encoding="utf-8")
    val = load_split(opts.data_dir, "val", "en", "de")
    val_src, val_ref = val.source[: opts.val_limit], val.target[: opts.val_limit]
    device = opts.device
    model.to(device)
    optim = torch.optim.AdamW(model.parameters(), lr=opts.lr, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.01)
    start_epoch, step = resume_last_epoch(work, model, optim)
    bf16 = opts.bf16 and device == "cpu" and cpu_has_bf16()
    pad = int(tok.pad_token_id)
    logger.info("LLM %.2f M parameters on %s%s, %d sentences", sum(p.numel() for p in model.parameters()) / 1e6,
                device, " (bf16 autocast)" if bf16 else "", len(records))
    for epoch in range(start_epoch, opts.epochs + 1):
        seqs, prompts = epoch_examples(tok, records, epoch, opts.seed)
        batches = make_batches(seqs, [[] for _ in seqs], max_tokens=opts.max_tokens, seed=opts.seed * 1000 + epoch)
        model.train()
        t0, loss_sum = time.time(), 0.0
        bar = tqdm(batches, desc=f"llm epoch {epoch}/{opts.epochs}", unit="batch", mininterval=5.0)
        for n, idx in enumerate(bar, 1):
            batch = {k: v.to(device) for k, v in collate(idx, seqs, prompts, pad).items()}
            step += 1
            for g in optim.param_groups:
                g["lr"] = inverse_sqrt_lr(step, opts.lr, opts.warmup_steps)
            with torch.autocast(device_type="cpu" if device == "cpu" else "cuda", dtype=torch.bfloat16,
                                enabled=bf16 or device != "cpu"):
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = next_token_loss(logits, batch["labels"])
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), opts.clip_norm)
            optim.step()
            loss_sum += float(loss.detach())
            bar.set_postfix(loss=f"{loss_sum / n:.3f}", refresh=False)
        bar.close()
        save_epoch(work, epoch, step, {"hf_config": model.config.to_dict()}, model, optim)
        snap = work / "snapshot"
        _save_hf(model, tok, snap, dtype=torch.float32)
        bleu = simultaneous_bleu(snap, val_src, val_ref, opts.val_level, device) if val_src else float("nan")
        rec = {"epoch": epoch, "step": step, "loss": round(loss_sum / max(len(batches), 1), 4),
               f"val_bleu_{opts.val_level}": round(bleu, 2), "train_seconds": round(time.time() - t0, 1)}
        logger.info("%s", rec)
        with open(work / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
    return work


def _save_hf(model: Any, tok: Any, out_dir: Path, *, dtype: torch.dtype) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    original = next(model.parameters()).dtype
    model.to(dtype)
    try:
        model.save_pretrained(str(out_dir))
    finally:
        model.to(original)
    tok.save_pretrained(str(out_dir))


def finalize(work_dir: Path, out_dir: Path, *, average_last: int = 2) -> Path:
    """Average the last ``average_last`` epochs into ``work_dir/hf`` (float32 Hugging Face directory), then write
    ``out_dir``: ONNX int8 for a Marian model (the default), bfloat16 safetensors otherwise; card included."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from models.llm.onnx_export import export_dir, unsupported_reason

    ckpts = sorted(work_dir.glob("epoch*.pt"))[-average_last:]
    if not ckpts:
        raise FileNotFoundError(f"no epoch checkpoints in {work_dir}: train first")
    config = AutoConfig.from_pretrained(str(work_dir / "hf_config.json"))
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(average_state_dicts(ckpts), strict=False)
    model.tie_weights()
    tok = AutoTokenizer.from_pretrained(str(work_dir / "tokenizer"))
    hf_dir = work_dir / "hf"
    _save_hf(model.eval(), tok, hf_dir, dtype=torch.float32)
    history = [json.loads(x) for x in (work_dir / "log.jsonl").read_text(encoding="utf-8").splitlines() if x]
    training = json.dumps({"epochs": history, "averaged": [c.name for c in ckpts]}, indent=2) + "\n"
    (hf_dir / "training.json").write_text(training, encoding="utf-8")
    if unsupported_reason(model.config) is None:
        for stale in out_dir.glob("*.safetensors"):
            stale.unlink()
        export_dir(hf_dir, out_dir, check_ids=_check_ids(tok))
    else:
        _save_hf(model.eval(), tok, out_dir, dtype=torch.bfloat16)
        (out_dir / "training.json").write_text(training, encoding="utf-8")
    write_model_card(out_dir, model, history, [c.name for c in ckpts])
    return out_dir


def _check_ids(tok: Any) -> list[int]:
    """A realistic interleaved sequence to check the ONNX graph with: the high-latency prompt and one chunk."""
    text = f"A man in a blue shirt is standing on a ladder .{EOR} Ein Mann"
    return [*prompt_ids(tok, "high"), *tok(text, add_special_tokens=False)["input_ids"]]


def _arch(c: Any) -> str:
    """Layers, width, heads and FFN of a causal-LM config (Marian or Llama-style names)."""
    def get(*names: str) -> Any:
        return next((getattr(c, n) for n in names if getattr(c, n, None) is not None), "?")

    return (f"{get('decoder_layers', 'num_hidden_layers')} layers, width {get('d_model', 'hidden_size')}, "
            f"{get('decoder_attention_heads', 'num_attention_heads')} heads, FFN "
            f"{get('decoder_ffn_dim', 'intermediate_size')}, {get('max_position_embeddings')} positions")


def write_model_card(out_dir: Path, model: Any, history: list[dict[str, Any]], averaged: list[str]) -> Path:
    """``README.md`` beside the weights: what the model is, how it was trained; test scores are added by hand
    from ``benchmarks/llm_levels``."""
    c = model.config
    params = sum(p.numel() for p in model.parameters())
    onnx = sorted(out_dir.glob("*.onnx"))
    weights = onnx or sorted(out_dir.glob("*.safetensors"))
    size = sum(f.stat().st_size for f in weights) / 1e6
    form = ("ONNX, int8 weights, KV cache as graph input/output (onnxruntime; no torch needed)" if onnx
            else "bfloat16 safetensors (loaded as float32 on a CPU)")
    rows = ["| epoch | loss | val BLEU (high latency) | minutes |", "|---:|---:|---:|---:|"]
    rows += [f"| {h['epoch']} | {h['loss']} | {next((v for k, v in h.items() if k.startswith('val_bleu')), '–')} | "
             f"{h['train_seconds'] / 60:.1f} |" for h in history]
    lines = [
        "# llm-en-de — interleaved read/write causal LM for simultaneous en→de (EAST-style)", "",
        f"A decoder-only `{type(model).__name__}` (Hugging Face transformers): {_arch(c)}; {params / 1e6:.2f} M "
        f"parameters; bundled as {size:.1f} MB of {form}. The float32 Hugging Face directory it was exported from is "
        "`work/llm-en-de/hf` after training (fine-tune or load it with transformers).", "",
        "It reads English word by word and writes German in chunks, deciding itself when: the sequence is a latency "
        "prompt, then `src1<|end-of-read|>tgt1<|end-of-write|> src2<|end-of-read|>…`. After each source word one token "
        "is probed; `<|end-of-read|>` switches to writing until `<|end-of-write|>`. The KV cache of the one growing "
        "sequence is reused at every step (`--policy llm --latency low|medium|high`).", "",
        "## Initialisation and data", "",
        "Initialised from the bundled AR model's training checkpoints: shared embeddings (same SentencePiece ids, plus "
        "`<|end-of-read|>`, `<|end-of-write|>` and `<pad>`), the lower layers from the AR encoder, the upper layers "
        "from the AR decoder (their cross-attention weights are unused). Trained on Multi30k train (29,000 pairs; "
        "non-commercial research use, the same terms apply here) distilled by the AR model: chunk boundaries where the "
        "teacher's translation of a source prefix agrees with its full translation (low latency), 2 / 4 source words "
        "later (medium / high), and offline pairs; one level drawn per sentence and epoch.", "",
        "## Training", "",
        "`simulsub train llm-simt --export` (resumable; `make train-llm`): AdamW, peak LR 5e-4, 400 warm-up steps then "
        "inverse square-root decay, token batches of 6,000, bf16 autocast on the CPU, loss on everything after the "
        f"prompt. Exported: the mean of {', '.join(averaged)}.", "",
        *rows, "",
        "## Scores", "",
        "See `benchmarks/results/llm_levels.md` (`python -m benchmarks.llm_levels`).", "",
    ]
    path = out_dir / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
