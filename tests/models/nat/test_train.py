"""NAT training on a hand-made distilled file: prefix pairs sampled, loss falls, resume, export loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streaming.errors import WorkDirError

pytest.importorskip("torch")


def write_distill(path: Path, n: int) -> None:
    from tests.conftest import multi30k_lines

    src, tgt = multi30k_lines("train.en", n), multi30k_lines("train.de", n)
    with open(path, "w", encoding="utf-8") as f:
        for i, (s, t) in enumerate(zip(src, tgt, strict=True)):
            words = s.split()
            prefixes = [" ".join(t.split()[: max(1, j * len(t.split()) // len(words))]) for j in range(1, len(words))]
            f.write(json.dumps({"index": i, "source": s, "full": t, "prefixes": prefixes}) + "\n")


def test_pairs_training_resume_and_export(tmp_path: Path) -> None:
    from models.nat.runtime import NatTranslator
    from models.nat.train import NatTrainOptions, build_pairs, finalize, train
    from models.text.spm import train_joint_spm
    from tests.conftest import multi30k_lines

    distill = tmp_path / "distill.jsonl"
    write_distill(distill, 24)
    spm_model = train_joint_spm(multi30k_lines("train.en", 300) + multi30k_lines("train.de", 300), tmp_path / "sp",
                                vocab_size=200)
    data = tmp_path / "m30k"
    data.mkdir()
    for lang in ("en", "de"):
        (data / f"val.{lang}").write_text("\n".join(multi30k_lines(f"val.{lang}", 8)) + "\n", encoding="utf-8")
    opts = NatTrainOptions(distill_file=distill, spm_model=spm_model, work_dir=tmp_path / "work", data_dir=data,
                           d_model=32, heads=2, ffn_dim=64, encoder_layers=1, decoder_layers=1, upsample=3,
                           max_tokens=600, lr=3e-3, warmup_steps=5, epochs=1, threads=1, init_from="",
                           prefixes_per_sentence=2)
    src, tgt = build_pairs(opts)
    assert len(src) == 24 * 3 and src[:1] == multi30k_lines("train.en", 1)
    assert build_pairs(opts) == (src, tgt)  # the sampled prefixes are fixed by the seed
    train(opts)
    opts.epochs = 3
    train(opts)  # resumes after epoch 1
    log = [json.loads(x) for x in (opts.work_dir / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert log[-1]["loss"] < log[0]["loss"]
    out = finalize(opts.work_dir, tmp_path / "export", spm_model, average_last=2)
    tr = NatTranslator(out)
    assert isinstance(tr.translate_sentence("A man in a blue shirt."), str)
    opts.upsample = 2
    with pytest.raises(WorkDirError, match="upsample"):
        train(opts)
