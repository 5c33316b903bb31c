"""CIF firing on hand-made weights: positions, embeddings, the tail, streaming == offline, torch == numpy."""

from __future__ import annotations

import numpy as np
import pytest

from models.asr.cif import CifState, cif_finish, cif_offline, cif_step, concat_outputs, expected_token_count


def test_fires_where_the_running_sum_crosses_one() -> None:
    alphas = np.array([0.3, 0.4, 0.5, 0.2, 0.6, 0.9, 0.1], dtype=np.float32)
    # running sums: 0.3 0.7 1.2* 1.4 2.0* 2.9 3.0* → fires at frames 2, 4, 6
    hidden = np.eye(7, dtype=np.float32)
    out = cif_offline(alphas, hidden, tail=0.0)
    assert out.positions == (2, 4, 6)
    # token 0: 0.3·h0 + 0.4·h1 + 0.3·h2 (frame 2 split 0.3 / 0.2)
    np.testing.assert_allclose(out.embeddings[0], [0.3, 0.4, 0.3, 0, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(out.embeddings[1], [0, 0, 0.2, 0.2, 0.6, 0, 0], atol=1e-6)
    np.testing.assert_allclose(out.embeddings[2], [0, 0, 0, 0, 0, 0.9, 0.1], atol=1e-6)
    # every token integrates exactly weight 1
    np.testing.assert_allclose(out.embeddings.sum(axis=1), 1.0, atol=1e-6)


def test_tail_fires_an_almost_complete_last_token_only() -> None:
    hidden = np.ones((3, 2), dtype=np.float32)
    # leftover 0.6 ≥ 0.55: the tail (0.45) completes it
    out = cif_offline(np.array([0.5, 0.5, 0.6], np.float32), hidden)
    assert out.positions == (1, 3)  # frame 3 is the virtual tail frame
    np.testing.assert_allclose(out.embeddings[1], [0.6, 0.6], atol=1e-6)  # the zero tail frame adds nothing
    # leftover 0.5 < 0.55: no extra token
    out = cif_offline(np.array([0.5, 0.5, 0.5], np.float32), hidden)
    assert out.positions == (1,)
    assert expected_token_count(np.array([0.5, 0.5, 0.6])) == 2
    assert expected_token_count(np.array([0.5, 0.5, 0.5])) == 1


def test_weight_above_threshold_fires_several_tokens_in_one_frame() -> None:
    out = cif_offline(np.array([0.5, 2.0], np.float32), np.array([[1.0], [2.0]], np.float32), tail=0.0)
    assert out.positions == (1, 1)
    np.testing.assert_allclose(out.embeddings[:, 0], [0.5 + 0.5 * 2, 1.0 * 2], atol=1e-6)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7])
def test_streaming_chunks_equal_offline(chunk: int) -> None:
    rng = np.random.default_rng(chunk)
    alphas = rng.uniform(0, 0.7, 40).astype(np.float32)
    hidden = rng.standard_normal((40, 8)).astype(np.float32)
    offline = cif_offline(alphas, hidden)
    state = CifState(dim=8)
    parts = [cif_step(alphas[i : i + chunk], hidden[i : i + chunk], state) for i in range(0, 40, chunk)]
    assert state.frames == 40
    carried = state.weight
    parts.append(cif_finish(state))
    streamed = concat_outputs(parts, dim=8)
    assert streamed.positions == offline.positions
    np.testing.assert_array_equal(streamed.embeddings, offline.embeddings)
    assert len(offline) == expected_token_count(alphas)
    assert 0 <= carried < 1.0 and state.weight == 0.0  # finish resets the carried weight


def test_state_carries_partial_embedding_across_chunks() -> None:
    state = CifState(dim=2)
    first = cif_step(np.array([0.4, 0.4], np.float32), np.array([[1, 0], [0, 1]], np.float32), state)
    assert len(first) == 0
    assert state.weight == pytest.approx(0.8)
    np.testing.assert_allclose(state.partial, [0.4, 0.4])
    second = cif_step(np.array([0.5], np.float32), np.array([[2, 2]], np.float32), state)
    assert second.positions == (2,)
    np.testing.assert_allclose(second.embeddings[0], [0.4 + 0.2 * 2, 0.4 + 0.2 * 2], atol=1e-6)
    assert state.weight == pytest.approx(0.3)


def test_shape_errors() -> None:
    with pytest.raises(ValueError):
        cif_step(np.zeros(3, np.float32), np.zeros((2, 4), np.float32), CifState(dim=4))
    with pytest.raises(ValueError):
        CifState(dim=3, partial=np.zeros(2, np.float32))


def test_torch_dense_cif_matches_the_frame_loop() -> None:
    torch = pytest.importorskip("torch")
    from models.asr.paraformer.model import add_tail, cif_dense

    rng = np.random.default_rng(3)
    lengths = [30, 17]
    alphas = np.zeros((2, 30), np.float32)
    for b, n in enumerate(lengths):
        alphas[b, :n] = rng.uniform(0, 0.8, n)
    hidden = rng.standard_normal((2, 30, 6)).astype(np.float32)
    a, h = add_tail(torch.from_numpy(alphas), torch.from_numpy(hidden), torch.tensor(lengths), 0.45)
    num = torch.floor(a.sum(1) + 1e-4)
    dense = cif_dense(a, h, num, int(num.max())).numpy()
    for b, n in enumerate(lengths):
        ref = cif_offline(alphas[b, :n], hidden[b, :n])
        assert int(num[b]) == len(ref)
        np.testing.assert_allclose(dense[b, : len(ref)], ref.embeddings, atol=1e-5)
        assert not dense[b, len(ref) :].any()
