"""Long-form re-segmentation onto reference sentences."""

from __future__ import annotations

from streaming.resegment import TimedWord, align_to_sentences, sentence_spans, split_by_sentence


def test_alignment_follows_the_reference_sentences() -> None:
    refs = ["Ein Mann geht .", "Eine Frau rennt schnell .", "Der Hund bellt ."]
    text = "ein Mann läuft . Frau rennt sehr schnell . der Hund bellt laut ."
    hyp = text.split()
    assert align_to_sentences(hyp, refs) == [0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
    assert align_to_sentences(hyp, ["x"]) == [0] * len(hyp)
    assert align_to_sentences([], refs) == []
    # a hypothesis that misses a whole sentence leaves it empty
    groups = split_by_sentence([TimedWord(w, 0.0, 0.0, 0.0, 1.0) for w in ["ein", "Mann", "Hund", "bellt"]], refs)
    assert [[w.text for w in g] for g in groups] == [["ein", "Mann"], [], ["Hund", "bellt"]]


def test_sentence_spans_from_segments() -> None:
    g0 = [TimedWord("a", 900.0, 950.0, 0.0, 2000.0)]
    g2 = [TimedWord("b", 5100.0, 5200.0, 4000.0, 6000.0), TimedWord("c", 7000.0, 7100.0, 6500.0, 8000.0)]
    assert sentence_spans([g0, [], g2], 9000.0) == [(0.0, 2000.0), (2000.0, 4000.0), (4000.0, 8000.0)]
