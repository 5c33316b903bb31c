"""Caption state: masking, revision history, re-translation delays and Normalized Erasure."""

import pytest

from streaming.caption import CaptionState
from streaming.instance import InstanceRecord, LogFormatError, score_instances
from streaming.metrics.quality import normalized_erasure
from streaming.types import TargetState


def t(text: str, final: bool = False, stable: int = 0) -> TargetState:
    words = tuple(text.split())
    return TargetState(words, len(words) if final else stable, 0, final)


def test_delay_is_first_revision_after_which_prefix_never_changes():
    cap = CaptionState()
    cap.show(t("Ein"), amount=1, elapsed=1.5)
    cap.show(t("Ein Mann"), amount=2, elapsed=2.5)
    cap.show(t("Eine Frau geht"), amount=3, elapsed=3.5)
    cap.show(t("Eine Frau geht .", final=True), amount=4, elapsed=4.5)
    delays, elapsed = cap.word_timing()
    assert delays == [3, 3, 3, 4]
    assert elapsed == [3.5, 3.5, 3.5, 4.5]
    # erased: 0, 0, 2 ("Ein Mann" -> "Eine ..."), 0
    assert cap.erased_words() == 2


def test_word_that_disappears_and_returns_counts_from_its_return():
    cap = CaptionState()
    cap.show(t("A B"), amount=1, elapsed=1)
    cap.show(t("A"), amount=2, elapsed=2)
    cap.show(t("A B C", final=True), amount=3, elapsed=3)
    assert cap.word_timing()[0] == [1, 3, 3]
    assert cap.erased_words() == 1


def test_mask_k_hides_tail_until_final_and_unchanged_display_is_not_a_revision():
    cap = CaptionState(mask_k=2)
    assert cap.show(t("a b"), amount=1, elapsed=1) is None  # nothing to show yet
    rev = cap.show(t("a b c"), amount=2, elapsed=2)
    assert rev is not None and rev.words == ("a",)
    assert cap.show(t("a x y"), amount=3, elapsed=3) is None  # still displays "a"
    final = cap.show(t("a b c d", final=True), amount=4, elapsed=4)
    assert final is not None and final.words == ("a", "b", "c", "d")
    assert [r.text for r in cap.revisions] == ["a", "a b c d"]
    assert cap.word_timing()[0] == [2, 4, 4, 4]


def test_stable_count_is_clipped_to_displayed_words():
    cap = CaptionState(mask_k=1)
    rev = cap.show(TargetState(("a", "b"), 2, 1, False), amount=1, elapsed=1)
    assert rev is not None and rev.stable == 1


def test_negative_mask_rejected():
    with pytest.raises(ValueError):
        CaptionState(mask_k=-1)


def test_normalized_erasure_corpus_is_sum_over_sum():
    assert normalized_erasure([1, 3], [4, 4]) == pytest.approx(0.5)
    assert normalized_erasure([0], [0]) == 0.0


def test_record_from_caption_round_trips_and_scores():
    cap = CaptionState()
    cap.show(t("a b"), amount=1, elapsed=1.25)
    cap.show(t("a c d"), amount=2, elapsed=2.25)
    cap.show(t("a c d e", final=True), amount=3, elapsed=3.25)
    rec = InstanceRecord.from_caption(0, cap, source_length=3, reference="a c d e", compute_ms=10.0, updates=4)
    obj = rec.to_json()
    assert obj["prediction"] == "a c d e" and obj["prediction_length"] == 4
    assert obj["delays"] == [1, 2, 2, 3]
    back = InstanceRecord.from_json(obj)
    assert back.erased_words() == 1
    scores = score_instances([back])
    assert scores["NE"] == pytest.approx(0.25)
    assert scores["BLEU"] == pytest.approx(100.0)
    assert scores["compute_ms_per_sentence"] == pytest.approx(10.0)
    assert scores["compute_ms_per_update"] == pytest.approx(2.5)
    assert "AL_CA" in scores


def test_compacted_record_keeps_its_erasure_and_scores_the_same():
    cap = CaptionState()
    for text, amount in (("a b", 1), ("a c d", 2), ("x", 3)):
        cap.show(t(text), amount=amount, elapsed=amount + 0.25)
    cap.show(t("x y", final=True), amount=4, elapsed=4.25)
    rec = InstanceRecord.from_caption(0, cap, source_length=4, reference="x y")
    small = rec.compact()
    assert small.revisions is None and small.erased == rec.erased_words() == 4  # "b" once, then "a c d"
    assert score_instances([small]) == score_instances([rec])
    obj = small.to_json()
    assert "revisions" not in obj and obj["erased"] == 4
    assert InstanceRecord.from_json(obj).erased_words() == 4
    with pytest.raises(LogFormatError, match="erased"):
        InstanceRecord.from_json({**obj, "erased": -1})


def test_reference_length_counts_words_like_simuleval_on_clean_text() -> None:
    from pathlib import Path

    refs = (Path(__file__).resolve().parents[2].parent / "shared" / "data" / "multi30k" / "test_2016_flickr.de")
    lines = refs.read_text(encoding="utf-8").splitlines()[:200] if refs.is_file() else ["Ein Mann geht ."]
    for ref in lines:  # SimulEval: len(reference.split(" ")); the same on every clean reference
        rec = InstanceRecord(index=0, prediction="", delays=[], source_length=1.0, reference=ref)
        assert rec.reference_length == len(ref.split(" "))
    rec = InstanceRecord(index=0, prediction="", delays=[], source_length=1.0, reference=" Ein  Mann ")
    assert rec.reference_length == 2  # SimulEval would count 5 (empty strings between the spaces)


def test_segment_stats_go_to_the_instance_holding_them() -> None:
    from streaming.resegment import attach_segment_stats

    def seg(erased: int, compute: float, updates: int) -> InstanceRecord:
        return InstanceRecord(index=0, prediction="x", delays=[0.0], source_length=1.0, erased=erased,
                              compute_ms=compute, updates=updates)

    a = InstanceRecord(index=0, prediction="a b", delays=[1.0, 2.0], source_length=1000.0,
                       extra={"start_ms": 0.0, "end_ms": 1000.0})
    b = InstanceRecord(index=1, prediction="c", delays=[1.0], source_length=1000.0,
                       extra={"start_ms": 1000.0, "end_ms": 2000.0})
    attach_segment_stats([a, b], [(0.0, 900.0, seg(1, 5.0, 3)), (800.0, 1500.0, seg(2, 7.0, 4)),
                                  (2500.0, 2600.0, seg(0, 1.0, 1))], 2600.0)
    assert (a.erased, a.compute_ms, a.updates) == (1, 5.0, 3)
    assert (b.erased, b.compute_ms, b.updates) == (2, 8.0, 5)  # midpoint 1150 ms, and the nearest for 2550 ms
    assert a.extra["audio_ms"] == 2600.0 and "audio_ms" not in b.extra
