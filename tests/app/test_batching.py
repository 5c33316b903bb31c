"""Cross-session batching (app/batching.py): callers get their own results, batches form, and batched
translations are exactly the translations of single calls."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app.batching import BatchedTranslator, BatchingOptions, DynamicBatcher

ROOT = Path(__file__).resolve().parents[2]
MULTI30K = ROOT.parent / "shared" / "data" / "multi30k"


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="window"):
        BatchingOptions(window_ms=-1)
    with pytest.raises(ValueError, match="batch size"):
        BatchingOptions(max_batch=0)


def test_concurrent_callers_share_batches_and_get_their_own_results() -> None:
    seen: list[list[int]] = []

    def square(batch: list[int]) -> list[int]:
        seen.append(list(batch))
        return [v * v for v in batch]

    batcher: DynamicBatcher[int, int] = DynamicBatcher(square, BatchingOptions(window_ms=50, max_batch=4))
    barrier = threading.Barrier(8)

    def call(v: int) -> int:
        barrier.wait()
        return batcher(v)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(8)))
    batcher.close()
    assert results == [v * v for v in range(8)]
    assert max(len(b) for b in seen) == 4  # max_batch caps a batch
    assert len(seen) < 8  # requests waiting together ran together
    assert sorted(v for b in seen for v in b) == list(range(8))
    assert batcher.stats.requests == 8 and batcher.stats.batches == len(seen)


def test_groups_never_mix_and_the_oldest_group_goes_first() -> None:
    seen: list[list[str]] = []
    gate, running = threading.Event(), threading.Event()

    def run(batch: list[str]) -> list[str]:
        running.set()
        gate.wait(5)
        seen.append(list(batch))
        return [s.upper() for s in batch]

    batcher: DynamicBatcher[str, str] = DynamicBatcher(run, BatchingOptions(window_ms=0, max_batch=8),
                                                      group=lambda s: s[0])
    first = batcher.submit("a0")  # runs alone and holds the thread until the gate opens
    assert running.wait(5)
    futures = [batcher.submit(s) for s in ("b1", "a2", "b3", "a4")]
    gate.set()
    assert first.result(5) == "A0"
    assert [f.result(5) for f in futures] == ["B1", "A2", "B3", "A4"]
    batcher.close()
    assert seen == [["a0"], ["b1", "b3"], ["a2", "a4"]]


def test_a_failing_batch_fails_its_callers_and_the_batcher_goes_on() -> None:
    def run(batch: list[int]) -> list[int]:
        if 13 in batch:
            raise ValueError("unlucky")
        return batch

    batcher: DynamicBatcher[int, int] = DynamicBatcher(run, BatchingOptions(window_ms=0))
    with pytest.raises(ValueError, match="unlucky"):
        batcher(13)
    assert batcher(7) == 7
    batcher.close()
    with pytest.raises(RuntimeError, match="shut down"):
        batcher.submit(1)


def test_a_batch_with_the_wrong_number_of_results_is_an_error() -> None:
    batcher: DynamicBatcher[int, int] = DynamicBatcher(lambda batch: [], BatchingOptions(window_ms=0))
    with pytest.raises(RuntimeError, match="gave 0 results"):
        batcher(1)
    batcher.close()


def test_batched_translations_equal_single_calls() -> None:
    from app.profiles import load_translator

    translator = load_translator(None, threads=1)
    lines = (MULTI30K / "test_2016_flickr.en").read_text(encoding="utf-8").splitlines()[:12]
    sources = [" ".join(line.split()[: max(1, i % 9 + 1)]) for i, line in enumerate(lines)]
    alone = [translator.translate_sentence(s, beam_size=4) for s in sources]
    forced = [translator.translate_sentence(s, beam_size=4, target_prefix="Ein") for s in sources[:4]]
    batched = BatchedTranslator(translator, BatchingOptions(window_ms=30, max_batch=16))
    barrier = threading.Barrier(len(sources))

    def call(s: str) -> str:
        barrier.wait()
        return batched.translate_sentence(s, beam_size=4)

    with ThreadPoolExecutor(len(sources)) as pool:
        together = list(pool.map(call, sources))
    assert together == alone
    assert batched.batcher.stats.mean_size > 1
    assert [batched.translate_sentence(s, beam_size=4, target_prefix="Ein") for s in sources[:4]] == forced
    assert batched.translate_sentence("   ") == ""
    assert batched.encode_source("A dog.") == translator.encode_source("A dog.")  # the rest is delegated
    batched.close()
