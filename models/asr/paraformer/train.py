"""Train the Paraformer on synthetic speech (resumable), validate by WER, export the ONNX directory.

Everything lives in ``work_dir`` (ignored by git): rendered corpora, ``tokens.model`` (SentencePiece),
``cmvn.npz``, ``last.pt`` (model + optimiser + position, written every epoch and every ``save_every_min``
minutes, so a killed run resumes mid-epoch), ``epochNN.pt`` (weights per epoch) and ``log.jsonl``.
Running the same command again continues where it stopped; the seed fixes data order, augmentation and init.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.asr.frontend import Cmvn, FrontendOptions
from models.asr.paraformer.data import (
    Example,
    SpecAugment,
    batch_indices,
    collate,
    compute_cmvn,
    iterate_batches,
    make_examples,
)
from models.asr.paraformer.model import TRAINING_ONLY_SETTINGS, LossTotals, Paraformer, ParaformerConfig, load_weights
from models.asr.paraformer.parallel import average_gradients, spawn_workers
from models.asr.paraformer.tokenizer import AsrTokenizer, normalize_transcript, train_asr_spm
from models.speech_corpus.corpus import CorpusOptions, build_corpus, load_corpus, read_lines
from models.speech_corpus.voices import VoicePlan
from models.text.data import multi30k_dir
from models.training import cpu_has_bf16

logger = logging.getLogger(__name__)


@dataclass
class ParaformerTrainOptions:
    """A training run. Sizes: LFR frames are 60 ms; ``max_frames`` bounds a batch (padding included)."""

    work_dir: Path = Path("work/paraformer")
    data_dir: Path = field(default_factory=multi30k_dir)
    train_text: str = "train.en"
    val_text: str = "val.en"
    copies: int = 2
    limit: int = 0
    val_limit: int = 300
    epochs: int = 8
    max_frames: int = 1500  # small batches: many more updates per CPU-hour, which is what CTC needs early
    lr: float = 2e-3
    warmup_steps: int = 1000
    vocab_size: int = 1000
    d_model: int = 192
    heads: int = 4
    ffn_dim: int = 768
    encoder_layers: int = 6
    decoder_layers: int = 2
    ctc_weight: float = 0.3
    # the CIF quantity loss (|Σα − N| per utterance) beside per-token losses: FunASR sums its losses per
    # utterance (≈ 15 tokens), so its quantity weight of 1.0 is ≈ 0.07 of ours; 1.0 here held the encoder back
    predictor_weight: float = 0.1
    # CIF alignment loss: the predictor learns to fire at each token's CTC spike (see Paraformer.alignment_loss)
    align_weight: float = 1.0
    dropout: float = 0.1
    chunk_train_prob: float = 0.25
    festival_share: float = 0.15
    spec_augment: bool = True
    threads: int = 2  # torch threads per worker process
    processes: int = 1  # data-parallel worker processes (models.asr.paraformer.parallel); batches are shared out
    bf16: bool = True  # bfloat16 autocast where the CPU has native bf16 (avx512_bf16 / AMX); fp32 elsewhere
    # encoder warm-up: the first N steps optimise CTC only, without running the decoder (a third of a joint
    # step's compute); the CIF predictor learns to count on a stopped-gradient encoder meanwhile
    ctc_warmup_steps: int = 4000
    jobs: int = 2
    seed: int = 1
    save_every_min: float = 10.0
    max_minutes: float = 0.0  # stop (after saving) once this much training time has passed; 0 = no limit
    progress: bool = True
    # resuming with more encoder/decoder layers than last.pt: add them as identity layers (models.asr.paraformer.grow)
    grow: bool = False
    # a new run starting from these weights (an epoch checkpoint, or tools.train_device's output); the
    # work dir must hold the tokens.model and cmvn.npz they were trained with
    init_weights: Path | None = None

    def model_config(self, vocab_size: int) -> ParaformerConfig:
        return ParaformerConfig(vocab_size=vocab_size, d_model=self.d_model, heads=self.heads, ffn_dim=self.ffn_dim,
                                encoder_layers=self.encoder_layers, decoder_layers=self.decoder_layers,
                                ctc_weight=self.ctc_weight, chunk_train_prob=self.chunk_train_prob,
                                predictor_weight=self.predictor_weight, dropout=self.dropout,
                                align_weight=self.align_weight)


@dataclass
class TrainState:
    """What ``last.pt`` records besides the tensors."""

    epoch: int = 0  # epochs fully done
    batch: int = 0  # batches done in the current epoch (per worker)
    step: int = 0
    best_wer: float = math.inf
    history: list[dict[str, Any]] = field(default_factory=list)
    workers: int = 1  # data-parallel workers that wrote this state


def _corpora(opts: ParaformerTrainOptions) -> tuple[Path, Path]:
    train_file, val_file = opts.data_dir / opts.train_text, opts.data_dir / opts.val_text
    for f in (train_file, val_file):
        if not f.is_file():
            raise FileNotFoundError(f"{f} does not exist: pass --data-dir or set SIMULSUB_MULTI30K")
    tag = f"s{opts.seed}-c{opts.copies}" + (f"-l{opts.limit}" if opts.limit else "") + f"-f{opts.festival_share:g}"
    train_dir = opts.work_dir / "corpus" / f"train-{tag}"
    val_dir = opts.work_dir / "corpus" / f"val-s{opts.seed + 1000}-l{opts.val_limit}"
    build_corpus(CorpusOptions(train_file, train_dir, seed=opts.seed, copies=opts.copies, limit=opts.limit,
                               plan=VoicePlan(split="train", festival_share=opts.festival_share), jobs=opts.jobs),
                 progress=opts.progress)
    build_corpus(CorpusOptions(val_file, val_dir, seed=opts.seed + 1000, limit=opts.val_limit,
                               plan=VoicePlan.clean("train"), jobs=opts.jobs), progress=opts.progress)
    return train_dir, val_dir


def prepare(opts: ParaformerTrainOptions) -> tuple[AsrTokenizer, Cmvn, list[Example], list[Example]]:
    """Render corpora, train the tokenizer, compute CMVN (each step cached in ``work_dir``)."""
    opts.work_dir.mkdir(parents=True, exist_ok=True)
    train_dir, val_dir = _corpora(opts)
    spm_file = opts.work_dir / "tokens.model"
    if not spm_file.is_file():
        texts = read_lines(opts.data_dir / opts.train_text)
        train_asr_spm(texts, opts.work_dir / "tokens", vocab_size=opts.vocab_size)
    tok = AsrTokenizer(spm_file)
    train_ex = make_examples(load_corpus(train_dir), tok)
    val_ex = make_examples(load_corpus(val_dir), tok, max_ratio=10.0)
    fopts = FrontendOptions()
    cmvn_file = opts.work_dir / "cmvn.npz"
    if cmvn_file.is_file():
        d = np.load(cmvn_file)
        cmvn = Cmvn(d["shift"], d["scale"])
    else:
        cmvn = compute_cmvn(train_ex, fopts)
        np.savez(cmvn_file, shift=cmvn.shift, scale=cmvn.scale)
    return tok, cmvn, train_ex, val_ex


def greedy_decode(model: Paraformer, examples: list[Example], tok: AsrTokenizer, cmvn: Cmvn, *,
                  max_frames: int = 8000) -> list[str]:
    """Offline greedy transcripts (torch) in input order."""
    fopts = FrontendOptions()
    model.eval()
    out: dict[int, str] = {}
    with torch.no_grad():
        for idx in batch_indices(examples, max_frames=max_frames, seed=0, epoch=0, shuffle=False):
            b = collate([examples[i] for i in idx], fopts, cmvn)
            for i, ids in zip(idx, model.greedy_ids(b.speech, b.lengths), strict=True):
                out[i] = tok.decode(ids)
    return [out[i] for i in range(len(examples))]


def validate(model: Paraformer, examples: list[Example], tok: AsrTokenizer, cmvn: Cmvn) -> float:
    from streaming.metrics.quality import word_error_rate

    hyps = greedy_decode(model, examples, tok, cmvn)
    return word_error_rate(hyps, [normalize_transcript(ex.text) for ex in examples])


def _lr(step: int, opts: ParaformerTrainOptions) -> float:
    """Linear warm-up to ``lr``, then inverse square-root decay (Noam)."""
    s = max(1, step)
    return opts.lr * min(s / opts.warmup_steps, math.sqrt(opts.warmup_steps / s))


def _save(path: Path, model: Paraformer, optim: torch.optim.Optimizer, state: TrainState,
          opts: ParaformerTrainOptions) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optim": optim.state_dict(), "state": asdict(state),
                "config": model.config.to_dict(), "options": {k: str(v) for k, v in asdict(opts).items()},
                "torch_rng": torch.get_rng_state()}, tmp)
    os.replace(tmp, path)


def train(opts: ParaformerTrainOptions) -> Path:
    """Train (or resume) until ``opts.epochs`` epochs are done; returns ``work_dir``. With ``processes`` > 1 the
    corpora are prepared here, then that many workers train data-parallel (rank 0 validates, saves and logs)."""
    if opts.processes < 1:
        raise ValueError("processes must be ≥ 1")
    if opts.init_weights is not None and not (opts.work_dir / "last.pt").is_file():
        missing = [f for f in ("tokens.model", "cmvn.npz") if not (opts.work_dir / f).is_file()]
        if missing:
            raise FileNotFoundError(f"--init-weights needs the {' and '.join(missing)} of the run the weights come "
                                    f"from in {opts.work_dir}: copy them there first")
    tok = prepare(opts)[0]
    last = opts.work_dir / "last.pt"
    if last.is_file():  # a mismatch is one clear error here, not one traceback per worker
        check_resume(opts, opts.model_config(len(tok)), last)
    if opts.processes == 1:
        return _train(opts, 0, 1)
    spawn_workers(_train, opts, opts.processes)
    return opts.work_dir


def check_resume(opts: ParaformerTrainOptions, config: ParaformerConfig, last: Path) -> None:
    """Check that ``last`` can resume with ``config``; with ``opts.grow`` and more layers asked for than it holds,
    deepen it first (identity layers; the old file is kept as ``last-e<E>d<D>.pt``)."""
    from models.asr.paraformer.grow import grow_checkpoint, growth

    ck = torch.load(last, map_location="cpu", weights_only=False)
    old = ParaformerConfig.from_dict(ck["config"])
    if growth(old, config):
        if not opts.grow:
            raise ValueError(f"{last} holds {old.encoder_layers} encoder and {old.decoder_layers} decoder layers: "
                             "add --grow to deepen it with identity layers, or resume with the same layer counts")
        shutil.copy2(last, last.with_name(f"last-e{old.encoder_layers}d{old.decoder_layers}.pt"))
        ck = grow_checkpoint(ck, config, seed=opts.seed)
        tmp = last.with_suffix(".tmp")
        torch.save(ck, tmp)
        os.replace(tmp, last)
    resumable_config(config, ck, last)


def resumable_config(config: ParaformerConfig, checkpoint: dict[str, Any], path: Path) -> None:
    """Raise ``ValueError`` when ``checkpoint`` holds a model of other weight shapes than ``config``; settings in
    :data:`TRAINING_ONLY_SETTINGS` may differ (the new values apply from here on)."""
    changed = sorted(k for k, v in config.to_dict().items() if checkpoint["config"].get(k) != v)
    for k in (k for k in changed if k in TRAINING_ONLY_SETTINGS):
        logger.info("resuming with %s %s (was %s)", k, getattr(config, k), checkpoint["config"].get(k))
    changed = [k for k in changed if k not in TRAINING_ONLY_SETTINGS]
    if changed:
        raise ValueError(f"{path} holds a model with other settings ({', '.join(changed)}): "
                         "use another --work-dir or the same options")


def _train(opts: ParaformerTrainOptions, rank: int, world: int) -> Path:
    """One worker: the whole run when ``world`` is 1, else its share of every epoch's batches."""
    from tqdm import tqdm

    torch.set_num_threads(opts.threads)
    tok, cmvn, train_ex, val_ex = prepare(opts)
    if not train_ex:
        raise ValueError("no usable training utterances")
    lead = rank == 0
    torch.manual_seed(opts.seed)
    model = Paraformer(opts.model_config(len(tok)))
    optim = torch.optim.AdamW(model.parameters(), lr=opts.lr, betas=(0.9, 0.98), weight_decay=0.01)
    state = TrainState(workers=world)
    last = opts.work_dir / "last.pt"
    if last.is_file():
        ck = torch.load(last, map_location="cpu", weights_only=False)  # train() checked (and grew) it
        model.load_state_dict(ck["model"])
        optim.load_state_dict(ck["optim"])
        state = TrainState(**ck["state"])
        torch.set_rng_state(ck["torch_rng"])
        if state.batch and state.workers != world:  # resumed mid-epoch with another worker count: same data done
            state.batch = state.batch * state.workers // world
        state.workers = world
        logger.info("resumed from %s: epoch %d batch %d step %d", last, state.epoch, state.batch, state.step)
    elif opts.init_weights is not None:
        model.load_state_dict(load_weights(opts.init_weights)[0])
        logger.info("starting from the weights of %s", opts.init_weights)
    if rank:  # other dropout masks and chunk geometries than the lead worker's
        torch.manual_seed(opts.seed * 1009 + rank * 7919 + state.step)
    logger.info("Paraformer %.2f M parameters, %d training / %d validation utterances, worker %d of %d",
                model.num_parameters() / 1e6, len(train_ex), len(val_ex), rank + 1, world)
    fopts = FrontendOptions()
    augment = SpecAugment() if opts.spec_augment else None
    bf16 = opts.bf16 and cpu_has_bf16()
    logger.info("%s", "bf16 autocast" if bf16 else "fp32")
    started = time.monotonic()
    last_save = started
    log = opts.work_dir / "log.jsonl"
    while state.epoch < opts.epochs:
        epoch = state.epoch + 1
        epoch_started = time.monotonic()
        batches = batch_indices(train_ex, max_frames=opts.max_frames, seed=opts.seed, epoch=epoch)
        if world > 1:  # worker r takes batches r, r + world, …; every worker does the same number of steps
            batches = batches[rank::world][: len(batches) // world]
        model.train()
        totals = LossTotals()
        bar = tqdm(total=len(batches), initial=state.batch, desc=f"epoch {epoch}/{opts.epochs}", unit="batch",
                   disable=not (opts.progress and lead))
        stopped = False
        for batch in iterate_batches(train_ex, batches, fopts, cmvn, augment=augment, seed=opts.seed, epoch=epoch,
                                     start=state.batch, stream=rank):
            state.step += 1
            for g in optim.param_groups:
                g["lr"] = _lr(state.step, opts)
            warm = model.ctc is not None and state.step <= opts.ctc_warmup_steps
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(batch.speech, batch.lengths, batch.targets, batch.target_lengths, encoder_only=warm)
            optim.zero_grad(set_to_none=True)
            out.loss.backward()
            now = time.monotonic()
            stop_here = bool(opts.max_minutes) and now - started > 60 * opts.max_minutes
            if world > 1:
                stop_here = average_gradients(model, world, float(stop_here and lead)) > 0
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optim.step()
            state.batch += 1
            totals.add(out)
            bar.update(1)
            bar.set_postfix(loss=f"{totals.mean('loss'):.3f}", acc=f"{totals.mean('acc'):.3f}")
            if lead and now - last_save > 60 * opts.save_every_min:
                _save(last, model, optim, state, opts)
                last_save = now
            if stop_here:
                stopped = True
                break
        bar.close()
        if stopped:
            if lead:
                _save(last, model, optim, state, opts)
            logger.info("stopped after %.1f min (max_minutes); run again to resume", (time.monotonic() - started) / 60)
            return opts.work_dir
        state.epoch, state.batch = epoch, 0
        if not lead:
            continue
        wer = validate(model, val_ex, tok, cmvn)
        record = {"epoch": epoch, "step": state.step, "val_wer": round(wer, 2), "lr": _lr(state.step, opts),
                  **totals.record(),
                  "epoch_minutes": round((time.monotonic() - epoch_started) / 60, 2)}
        logger.info("epoch %d: %s", epoch, record)
        state.history.append(record)
        state.best_wer = min(state.best_wer, wer)
        torch.save({"model": model.state_dict(), "config": model.config.to_dict()},
                   opts.work_dir / f"epoch{epoch:02d}.pt")
        _save(last, model, optim, state, opts)
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    return opts.work_dir


def average_checkpoints(work_dir: Path, last_n: int) -> Paraformer:
    """The mean of the weights of the last ``last_n`` epoch checkpoints that share the newest one's shapes (epochs
    from before a ``--grow`` are left out, with a warning)."""
    files = sorted(work_dir.glob("epoch*.pt"))[-max(1, last_n) :]
    if not files:
        raise FileNotFoundError(f"{work_dir} has no epoch checkpoints: train first")
    cks = [torch.load(f, map_location="cpu", weights_only=False) for f in files]
    newest = cks[-1]
    same = [c for c in cks if {k: v.shape for k, v in c["model"].items()} ==
            {k: v.shape for k, v in newest["model"].items()}]
    if len(same) < len(cks):
        logger.warning("averaging %d of the last %d epochs: the others have other layer counts", len(same), len(cks))
    model = Paraformer(ParaformerConfig.from_dict(newest["config"]))
    avg = {k: sum(c["model"][k].float() for c in same) / len(same) for k in newest["model"]}
    model.load_state_dict(avg)
    return model.eval()


def average_weight_files(files: Sequence[Path]) -> Paraformer:
    """The mean of the weights in ``files`` (``epochNN.pt``, ``last.pt`` or train_device outputs); all must have
    the same shapes, else a ValueError names the odd file."""
    if not files:
        raise ValueError("no weight files to average")
    loaded = [load_weights(f) for f in files]
    state0, config = loaded[0]
    shapes = {k: v.shape for k, v in state0.items()}
    for f, (state, _) in zip(files[1:], loaded[1:], strict=True):
        if {k: v.shape for k, v in state.items()} != shapes:
            raise ValueError(f"{f} has other layer shapes than {files[0]}: weights of different models cannot be "
                             "averaged")
    model = Paraformer(ParaformerConfig.from_dict(config))
    model.load_state_dict({k: sum(s[k] for s, _ in loaded) / len(loaded) for k in state0})
    return model.eval()


def finalize(work_dir: Path, out_dir: Path, *, average_last: int = 3, quantized: bool = True,
             weights: Path | Sequence[Path] | None = None, int8_only: bool = False) -> Path:
    """Average the last checkpoints (or the ``weights`` files: one, or several of the same shapes, averaged) and
    write the ONNX model directory to ``out_dir``; ``int8_only`` keeps only the int8 graphs (what is bundled)."""
    from models.asr.paraformer.export import export_directory

    weight_files: list[Path] = []
    if weights is not None:
        weight_files = [Path(weights)] if isinstance(weights, (str, Path)) else [Path(w) for w in weights]
    if weight_files:
        model = average_weight_files(weight_files)
        average_last = len(weight_files)
    else:
        model = average_checkpoints(work_dir, average_last)
    tok = AsrTokenizer(work_dir / "tokens.model")
    d = np.load(work_dir / "cmvn.npz")
    history = []
    log = work_dir / "log.jsonl"
    if log.is_file():
        history = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines() if x.strip()]
    extra = {"training": {"epochs": len(history), "last": history[-1] if history else None,
                          "averaged": average_last, "parameters": model.num_parameters()}}
    out = export_directory(model, out_dir, frontend=FrontendOptions(), cmvn=Cmvn(d["shift"], d["scale"]),
                           tokens=tok.token_list, spm_model=work_dir / "tokens.model", quantized=quantized,
                           extra=extra)
    write_model_card(out, model, history, average_last=average_last)
    if int8_only and quantized:
        for name in ("model.onnx", "stream_encoder.onnx", "stream_decoder.onnx"):
            (out / name).unlink(missing_ok=True)
    return out


def write_model_card(out_dir: Path, model: Paraformer, history: list[dict[str, Any]], *, average_last: int) -> Path:
    """``README.md`` beside the ONNX files: data, size, training record; test scores are appended by hand."""
    c = model.config
    last = history[-1] if history else {}
    sizes = {p.name: p.stat().st_size for p in sorted(out_dir.glob("*.onnx"))}
    lines = [
        "# paraformer-en: small streaming Paraformer for simulsub (English, 16 kHz)",
        "",
        f"- Architecture: SAN-M encoder {c.encoder_layers} × {c.d_model} (FSMN kernel {c.fsmn_kernel}, "
        f"{c.heads} heads, FFN {c.ffn_dim}), CIF predictor (threshold {c.threshold}, tail {c.tail_threshold}), "
        f"parallel decoder {c.decoder_layers} layers, glancing ratio {c.sampling_ratio}, CTC weight {c.ctc_weight}, "
        f"quantity-loss weight {c.predictor_weight}, CIF alignment-loss weight {c.align_weight} (the predictor "
        "learns to fire at each token's CTC spike); "
        f"{model.num_parameters() / 1e6:.2f} M parameters, {c.vocab_size} SentencePiece tokens.",
        "- Input: FunASR frontend (80-dim fbank, 25/10 ms hamming, LFR 7/6, CMVN in `am.mvn`); "
        "FunASR offline ONNX contract plus `stream_encoder.onnx` / `stream_decoder.onnx` for streaming.",
        "- Training data: espeak-ng and festival renderings of Multi30k English (train split) with varied voices, "
        "speeds, pitches, tempo perturbation, noise and SpecAugment. Multi30k is for non-commercial research use; "
        "the same terms apply to this model.",
        f"- Training: {len(history)} epochs, average of the last {average_last} epoch checkpoints; last epoch "
        f"validation WER {last.get('val_wer', 'n/a')} % (torch, greedy, clean val voices), "
        f"{sum(float(h.get('epoch_minutes', 0)) for h in history):.0f} min of training (2 CPU cores).",
        "- Files: " + ", ".join(f"`{k}` {v / 1e6:.1f} MB" for k, v in sizes.items()),
        "",
        "## Reproduce",
        "",
        "    simulsub train paraformer --export   # see `simulsub train paraformer --help`",
        "",
        "## Learning curve",
        "",
        "| epoch | step | val WER % | lr | train loss | decoder acc |",
        "|---|---|---|---|---|---|",
        *(f"| {h.get('epoch')} | {h.get('step')} | {h.get('val_wer')} | {float(h.get('lr', 0)):.2e} | "
          f"{h.get('loss')} | {h.get('acc')} |" for h in history),
        "",
        "## Scores",
        "",
        "Fill in with `simulsub transcribe ... --reference-file ... --json` on the held-out renderings.",
        "",
    ]
    path = out_dir / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
