"""Greedy MAP for DPPs (HieraVid eq. 6–7, 10): the fast incremental-Cholesky algorithm."""
from __future__ import annotations

import itertools

import pytest
import torch

from pruning_core.dpp import greedy_map, greedy_map_lowrank, greedy_map_reference


def _wishart(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    return x @ x.T


def _brute_force(L: torch.Tensor, k: int) -> set[int]:
    best, arg = -1.0, None
    for s in itertools.combinations(range(L.shape[0]), k):
        det = float(torch.linalg.det(L[list(s)][:, list(s)]))
        if det > best:
            best, arg = det, s
    return set(arg)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_greedy_equals_brute_force_on_a_diagonal_kernel(k):
    # det(L_S) = product of the chosen diagonal entries: greedy is exact
    L = torch.diag(torch.tensor([0.3, 2.0, 1.1, 0.7, 5.0, 0.2, 1.9], dtype=torch.float64))
    assert set(greedy_map(L, k).tolist()) == _brute_force(L, k)


def test_greedy_equals_brute_force_on_orthogonal_clusters():
    # items lie on 3 orthogonal directions with different lengths: the best 3-subset takes the
    # longest item of every direction, and greedy finds it
    dirs = torch.eye(3, dtype=torch.float64)
    lengths = torch.tensor([1.0, 2.5, 0.5, 3.0, 1.2, 0.8, 2.0, 0.3, 1.7], dtype=torch.float64)
    feats = dirs[torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])] * lengths.unsqueeze(1)
    L = feats @ feats.T
    assert set(greedy_map(L, 3).tolist()) == _brute_force(L, 3) == {1, 3, 6}


@pytest.mark.parametrize("seed", range(6))
def test_greedy_picks_the_argmax_determinant_for_k_1_and_the_best_pair_extension(seed):
    L = _wishart(9, 4, seed)
    first = int(greedy_map(L, 1)[0])
    assert first == int(torch.diagonal(L).argmax())
    pair = greedy_map(L, 2).tolist()
    dets = {j: float(torch.linalg.det(L[[first, j]][:, [first, j]])) for j in range(9) if j != first}
    assert pair[1] == max(dets, key=dets.get)


@pytest.mark.parametrize("n,d,k,seed", [(12, 6, 4, 0), (30, 8, 8, 1), (50, 20, 15, 2), (40, 40, 25, 3)])
def test_fast_greedy_matches_the_cubic_reference_on_random_kernels(n, d, k, seed):
    L = _wishart(n, d, seed)
    assert greedy_map(L, k).tolist() == greedy_map_reference(L, k).tolist()


@pytest.mark.parametrize("seed", range(3))
def test_lowrank_form_matches_the_explicit_kernel(seed):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(25, 7, generator=g, dtype=torch.float64)
    assert greedy_map_lowrank(f, 6).tolist() == greedy_map(f @ f.T, 6).tolist()


@pytest.mark.parametrize("n_blocks", [1, 3, 12])
def test_on_demand_rows_equal_the_precomputed_block_kernel(n_blocks):
    g = torch.Generator().manual_seed(7)
    f = torch.randn(48, 16, generator=g, dtype=torch.float64)
    seg = torch.arange(48) * n_blocks // 48
    k = torch.full((n_blocks,), max(1, 12 // n_blocks))
    together = greedy_map_lowrank(f, k, seg)
    assert torch.equal(together, greedy_map_lowrank(f, k, seg, max_kernel_entries=0))
    for b in range(n_blocks):
        idx = (seg == b).nonzero().squeeze(1)
        assert together[b].tolist() == idx[greedy_map_reference(f[idx] @ f[idx].T, int(k[b]))].tolist()


def test_blocks_run_together_equal_blocks_run_alone():
    g = torch.Generator().manual_seed(4)
    f = torch.randn(30, 6, generator=g, dtype=torch.float64)
    seg = torch.tensor([0] * 7 + [1] * 15 + [2] * 8)
    k = torch.tensor([3, 5, 2])
    out = greedy_map_lowrank(f, k, seg)
    for b, (lo, hi) in enumerate([(0, 7), (7, 22), (22, 30)]):
        alone = greedy_map_lowrank(f[lo:hi], int(k[b])) + lo
        assert out[b, : int(k[b])].tolist() == alone.tolist()
        assert (out[b, int(k[b]):] == -1).all()


def test_interleaved_blocks_never_mix():
    g = torch.Generator().manual_seed(5)
    f = torch.randn(20, 5, generator=g, dtype=torch.float64)
    seg = torch.arange(20) % 2
    out = greedy_map_lowrank(f, torch.tensor([4, 3]), seg)
    assert (seg[out[0]] == 0).all() and (seg[out[1, :3]] == 1).all()
    even = greedy_map_lowrank(f[0::2], 4) * 2
    assert out[0].tolist() == even.tolist()


def test_batched_kernels_with_padding_equal_single_runs():
    L = torch.stack([_wishart(10, 4, s) for s in range(3)])
    valid = torch.ones(3, 10, dtype=torch.bool)
    valid[1, 6:] = False
    out = greedy_map(L, torch.tensor([2, 4, 3]), valid)
    assert out[0, :2].tolist() == greedy_map(L[0], 2).tolist()
    assert out[1].tolist() == greedy_map(L[1, :6, :6], 4).tolist()
    assert out[2, :3].tolist() == greedy_map(L[2], 3).tolist()


def test_budget_beyond_the_kernel_rank_is_filled_by_priority():
    g = torch.Generator().manual_seed(6)
    f = torch.randn(10, 3, generator=g, dtype=torch.float64)      # rank 3
    prio = torch.arange(10, dtype=torch.float64)
    out = greedy_map_lowrank(f, 6, priority=prio)
    assert len(set(out.tolist())) == 6
    assert out[:3].tolist() == greedy_map_reference(f @ f.T, 3).tolist()
    rest = sorted(set(range(10)) - set(out[:3].tolist()), reverse=True)[:3]
    assert out[3:].tolist() == rest


def test_k_larger_than_the_block_keeps_the_whole_block():
    f = torch.randn(5, 4, dtype=torch.float64)
    out = greedy_map_lowrank(f, torch.tensor([9, 1]), torch.tensor([0, 0, 0, 1, 1]))
    assert sorted(out[0][out[0] >= 0].tolist()) == [0, 1, 2]
    assert out[1][out[1] >= 0].numel() == 1


def test_zero_relevance_items_are_chosen_last():
    # a zero row/column (r = 0 in eq. 9) adds nothing to any determinant
    f = torch.randn(6, 6, dtype=torch.float64)
    f[2] = 0.0
    assert 2 not in greedy_map_lowrank(f, 5).tolist()


def test_selection_is_deterministic():
    f = torch.randn(40, 8)
    seg = torch.arange(40) // 13
    a = greedy_map_lowrank(f, torch.tensor([3, 4, 5, 1]), seg)
    b = greedy_map_lowrank(f.clone(), torch.tensor([3, 4, 5, 1]), seg)
    assert torch.equal(a, b)


@pytest.mark.parametrize("interleaved", [False, True])
def test_many_blocks_padded_cholesky_rows_give_the_flat_rows_picks(interleaved, monkeypatch):
    """Above _MM_BLOCKS blocks the Cholesky rows are kept per block (padded); same picks as the flat
    [t, n] rows and as each block alone, with uneven blocks, exhausted budgets and outside items."""
    import pruning_core.dpp as dpp
    g = torch.Generator().manual_seed(11)
    sizes = [9, 3, 14, 6, 11, 2, 8, 10, 5, 7, 12, 4]
    n = sum(sizes)
    f = torch.randn(n, 5, generator=g, dtype=torch.float64)
    seg = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    if interleaved:
        seg = seg[torch.randperm(n, generator=g)]
    seg[::13] = -1                                            # items outside every block
    k = torch.tensor([4, 3, 7, 2, 6, 2, 1, 5, 5, 8, 3, 4])  # some beyond the block's rank (d = 5) or size
    prio = torch.rand(n, generator=g, dtype=torch.float64)
    padded = greedy_map_lowrank(f, k, seg, priority=prio)
    monkeypatch.setattr(dpp, "_MM_BLOCKS", 100)              # the flat path
    assert torch.equal(padded, greedy_map_lowrank(f, k, seg, priority=prio))
    for b in range(len(sizes)):
        idx = (seg == b).nonzero().squeeze(1)
        kb = min(int(k[b]), idx.numel())
        alone = idx[greedy_map_lowrank(f[idx], kb, priority=prio[idx])]
        assert padded[b, :kb].tolist() == alone.tolist()
