"""wait-k training on a hand-made distilled file: examples, loss falls, resume, export loads and translates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streaming.errors import WorkDirError

pytest.importorskip("torch")


def test_examples_training_resume_and_export(tmp_path: Path) -> None:
    import sentencepiece as spm

    from models.text.spm import train_joint_spm
    from models.waitk.model import EOS_ID, FULL_SOURCE
    from models.waitk.runtime import WaitkOnnx
    from models.waitk.train import WaitkTrainOptions, finalize, make_example, train
    from streaming.policies.waitk import WaitkPolicy
    from streaming.types import SourceState
    from tests.conftest import multi30k_lines
    from tests.models.nat.test_train import write_distill

    distill = tmp_path / "distill.jsonl"
    write_distill(distill, 24)
    spm_model = train_joint_spm(multi30k_lines("train.en", 300) + multi30k_lines("train.de", 300), tmp_path / "sp",
                                vocab_size=200)
    sp = spm.SentencePieceProcessor(model_file=str(spm_model))
    ex = make_example(sp, "A big dog", "Ein großer Hund")
    assert ex.src[-1] == EOS_ID and ex.src_word[-1] == 3 and ex.src_word[0] == 0
    assert ex.tgt[-1] == EOS_ID and ex.tgt_word[-1] == FULL_SOURCE and ex.tgt_word[0] == 1
    assert ex.tgt_word[:-1] == sorted(ex.tgt_word[:-1]) and ex.tgt_word[-2] == 3
    data = tmp_path / "m30k"
    data.mkdir()
    for lang in ("en", "de"):
        (data / f"val.{lang}").write_text("\n".join(multi30k_lines(f"val.{lang}", 4)) + "\n", encoding="utf-8")
    opts = WaitkTrainOptions(distill_file=distill, spm_model=spm_model, work_dir=tmp_path / "work", data_dir=data,
                             init_from="", d_model=32, heads=2, ffn_dim=64, layers=1, max_tokens=500, lr=3e-3,
                             warmup_steps=5, epochs=1, threads=1, val_limit=4)
    train(opts)
    opts.epochs = 3
    train(opts)  # resumes after epoch 1
    log = [json.loads(x) for x in (opts.work_dir / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert log[-1]["loss"] < log[0]["loss"] and "val_bleu_k3" in log[0]
    out = finalize(opts.work_dir, tmp_path / "export", spm_model, average_last=2)
    policy = WaitkPolicy(WaitkOnnx(out), k=2)
    words = ("A", "man", "walks")
    for i in range(1, 4):
        policy.update(SourceState(words[:i], float(i), finished=i == 3))
    assert policy.finish().final
    opts.k_max = 5
    with pytest.raises(WorkDirError, match="k_max"):
        train(opts)
