"""DPC-KNN (pruning_core.clustering) and the static-token pieces PruneVid and HoliTom share (temporal)."""
from __future__ import annotations

import math

import pytest
import torch

from pruning_core.clustering import dpc_knn, merge_clusters
from pruning_core.layout import TokenLayout
from pruning_core.temporal import (consecutive_similarity, dense_index, mean_pairwise_similarity, merge_lengths,
                                   merge_static, window_min_similarity)


def _dpc_reference(x: torch.Tensor, n_centres: int, k: int) -> tuple[list[int], list[int]]:
    """DPC-KNN of one group written out token by token (the definition, no batching)."""
    n, c = x.shape
    d = [[float(torch.linalg.norm(x[i] - x[j])) / math.sqrt(c) for j in range(n)] for i in range(n)]
    kk = min(k, n)
    rho = [math.exp(-sum(v * v for v in sorted(d[i])[:kk]) / kk) for i in range(n)]
    dmax = max(max(r) for r in d)
    delta = []
    for i in range(n):
        denser = [d[i][j] for j in range(n) if rho[j] > rho[i] or (rho[j] == rho[i] and j < i)]
        delta.append(min(denser) if denser else dmax)
    score = [delta[i] * rho[i] for i in range(n)]
    centres = sorted(sorted(range(n), key=lambda i: (-score[i], i))[:n_centres])
    assign = [i if i in centres else min(centres, key=lambda c_: (d[i][c_], centres.index(c_))) for i in range(n)]
    return centres, assign


def test_dpc_knn_matches_the_definition_group_by_group():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(23, 5, generator=g)
    groups = torch.tensor([0] * 9 + [1] * 6 + [2] * 8)[torch.randperm(23, generator=g)]
    n_c = torch.tensor([3, 2, 4])
    is_c, centre = dpc_knn(x, groups, n_c, k=3)
    for grp in range(3):
        rows = (groups == grp).nonzero().squeeze(1)
        ref_c, ref_a = _dpc_reference(x[rows], int(n_c[grp]), 3)
        assert rows[is_c[rows]].tolist() == rows[ref_c].tolist()
        assert centre[rows].tolist() == rows[ref_a].tolist()


def test_worked_example_two_blobs_get_one_centre_each():
    """Density peak: the middle of each tight blob is densest, and the other blob's peak is far."""
    x = torch.tensor([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]])
    is_c, centre = dpc_knn(x, torch.zeros(6, dtype=torch.long), torch.tensor([2]), k=3)
    assert is_c.nonzero().squeeze(1).tolist() == [1, 4]
    assert centre.tolist() == [1, 1, 1, 4, 4, 4]


def test_a_group_given_no_centre_is_dropped():
    x = torch.randn(6, 3)
    is_c, centre = dpc_knn(x, torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([1, 0]), k=2)
    assert int(is_c[:3].sum()) == 1 and centre[3:].tolist() == [-1, -1, -1]
    keep, values = merge_clusters(x, centre)
    assert keep.numel() == 1 and torch.allclose(values[0], x[:3].mean(0))


def test_merge_clusters_mean_and_beta_forms():
    x = torch.tensor([[1.0], [3.0], [5.0], [10.0]])
    centre = torch.tensor([1, 1, 1, 3])
    keep, mean = merge_clusters(x, centre)
    assert keep.tolist() == [1, 3] and mean[:, 0].tolist() == [3.0, 10.0]
    _, beta = merge_clusters(x, centre, beta=0.6)
    assert beta[0, 0].item() == pytest.approx(0.6 * 3 + 0.4 * 3) and beta[1, 0].item() == 10.0   # alone: itself
    _, beta2 = merge_clusters(torch.tensor([[0.0], [2.0], [4.0]]), torch.tensor([0, 0, 0]), beta=0.6)
    assert beta2[0, 0].item() == pytest.approx(0.6 * 0 + 0.4 * 3)


def test_dpc_knn_is_deterministic_with_ties():
    x = torch.zeros(8, 2)                                 # every density equal: the earlier token counts as denser
    a = dpc_knn(x, torch.zeros(8, dtype=torch.long), torch.tensor([3]), k=2)
    b = dpc_knn(x, torch.zeros(8, dtype=torch.long), torch.tensor([3]), k=2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and int(a[0].sum()) == 3


# ---------------------------------------------------------------- temporal pieces

def _video(frames=3, side=2, d=4, seed=0):
    layout = TokenLayout(frames, side, side)
    g = torch.Generator().manual_seed(seed)
    return layout, torch.randn(layout.num_tokens, d, generator=g)


def test_dense_index_marks_missing_tokens():
    layout = TokenLayout(2, 1, 3)
    dense = dense_index(torch.tensor([0, 2, 3, 4]), layout)
    assert dense.tolist() == [[0, -1, 1], [2, 3, -1]]


def test_mean_pairwise_similarity_is_the_mean_over_ordered_pairs_of_frames():
    layout, x = _video(frames=3)
    dense = dense_index(torch.arange(layout.num_tokens), layout)
    sim = mean_pairwise_similarity(x, dense, torch.tensor([0, 0, 0]))
    xs = torch.nn.functional.normalize(x.view(3, 4, -1), dim=-1)
    for p in range(4):
        pairs = [float(xs[a, p] @ xs[b, p]) for a in range(3) for b in range(3) if a != b]
        assert sim[0, p].item() == pytest.approx(sum(pairs) / 6, abs=1e-6)


def test_one_frame_segments_are_never_static():
    layout, x = _video(frames=2)
    dense = dense_index(torch.arange(layout.num_tokens), layout)
    assert torch.isinf(mean_pairwise_similarity(x, dense, torch.tensor([0, 1]))).all()
    sim = consecutive_similarity(x, dense)
    assert torch.isinf(window_min_similarity(sim, torch.tensor([0, 1]))).all()


def test_window_min_similarity_is_the_smallest_step_inside_the_window():
    sim = torch.tensor([[0.9, 0.1], [0.8, 0.95], [0.2, 0.3]])          # steps 0-1, 1-2, 2-3
    out = window_min_similarity(sim, torch.tensor([0, 0, 0, 1]))
    assert out[0].tolist() == pytest.approx([0.8, 0.1]) and torch.isinf(out[1]).all()


def test_merge_lengths_caps_the_saving_and_merges_the_last_position_partly():
    static = torch.tensor([[True, True, False]])
    prio = torch.tensor([[0.9, 0.95, 0.99]])
    assert merge_lengths(static, prio, torch.tensor([4]), None).tolist() == [[4, 4, 1]]
    # 4 tokens may be saved: position 1 (higher priority) saves 3, position 0 only 1 more
    assert merge_lengths(static, prio, torch.tensor([4]), 4).tolist() == [[2, 4, 1]]


def test_merge_static_keeps_the_mean_at_the_first_frame():
    layout = TokenLayout(3, 1, 2)
    x = torch.tensor([[1.0], [10.0], [3.0], [20.0], [5.0], [30.0]])
    keep, how, merged = merge_static(torch.arange(6), layout, torch.tensor([0, 0, 0]), torch.tensor([[3, 1]]))
    values = how.apply(x, keep)
    assert keep.tolist() == [0, 1, 3, 5] and values[:, 0].tolist() == [3.0, 10.0, 20.0, 30.0]
    assert merged.tolist() == [True, False, False, False]
