"""The bundled demo recordings: long-form references split back into exactly their timed sentences."""

from __future__ import annotations

import json
from pathlib import Path

from models.speech_corpus.recordings import join_sentences
from streaming.resegment import split_sentences

REC = Path(__file__).resolve().parents[2] / "recordings"


def test_join_sentences_ends_every_sentence() -> None:
    joined = join_sentences(["Ein Mann spielt", "Zwei Hunde rennen.", " Wer ist das? ", ""])
    assert joined == "Ein Mann spielt. Zwei Hunde rennen. Wer ist das?"
    assert split_sentences(joined) == ["Ein Mann spielt.", "Zwei Hunde rennen.", "Wer ist das?"]


def test_longform_references_match_their_sentence_times() -> None:
    times = [json.loads(x) for x in (REC / "longform.times.jsonl").read_text(encoding="utf-8").splitlines()]
    for name in ("longform.en", "longform.de"):
        lines = (REC / name).read_text(encoding="utf-8").splitlines()
        assert [len(split_sentences(x)) for x in lines] == [len(t) for t in times], name
