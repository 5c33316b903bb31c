"""Distillation output: one record per sentence with the teacher's full and prefix translations; resumable."""

from __future__ import annotations

import json
from pathlib import Path

from models.marian.distill import DistillOptions, distill, prefix_sources, read_distilled
from tests.conftest import multi30k_lines


def test_prefix_sources():
    assert prefix_sources("a b c", 10) == ["a", "a b"]
    assert prefix_sources("a", 10) == []
    assert prefix_sources("a b c d e", 2) == ["a", "a b"]


def test_distill_writes_full_and_prefix_translations_and_resumes(tiny_marian_dir: Path, tmp_path: Path):
    sources = multi30k_lines("val.en", 7)
    opts = DistillOptions(beam_size=1, shard_size=3, threads=1)
    out = distill(tiny_marian_dir, sources[:3], tmp_path, opts)  # one shard
    out = distill(tiny_marian_dir, sources, tmp_path, opts)  # resumes after it
    rows = list(read_distilled(out))
    assert [r.index for r in rows] == list(range(7))
    assert [r.source for r in rows] == sources
    for r in rows:
        assert len(r.prefixes) == len(r.source.split()) - 1
    again = tmp_path / "again"
    distill(tiny_marian_dir, sources, again, opts)
    assert (again / "distill.jsonl").read_text() == out.read_text()  # deterministic
    assert json.loads(out.read_text().splitlines()[0])["full"] == rows[0].full
