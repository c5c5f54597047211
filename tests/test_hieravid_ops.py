"""HieraVid's pure math (HieraVid.txt eq. 1–12) on hand-made tensors."""
from __future__ import annotations

import math

import pytest
import torch

from pruning_core.flops import layer_flops
from pruning_core.layout import TokenLayout
from pruning_core.methods import hieravid_ops as ops


def _scenes(frames_per_scene=(3, 3, 3), grid=(4, 4), d=16, noise=0.05, seed=0):
    """A synthetic video: every scene has its own per-position tokens; frames inside a scene are
    that scene's tokens plus small noise. Returns (embeds [N, d], ids, layout, first frame of each scene)."""
    g = torch.Generator().manual_seed(seed)
    hw = grid[0] * grid[1]
    rows, starts, f = [], [], 0
    for n_f in frames_per_scene:
        base = torch.randn(hw, d, generator=g)
        starts.append(f)
        for _ in range(n_f):
            rows.append(base + noise * torch.randn(hw, d, generator=g))
            f += 1
    x = torch.cat(rows)
    layout = TokenLayout(f, grid[0], grid[1])
    return x, torch.arange(layout.num_tokens), layout, starts


# ---------------------------------------------------------------- eq. 1–3

def test_predecessor_is_the_same_position_in_the_previous_frame():
    layout = TokenLayout(3, 2, 2)
    pred = ops.position_predecessors(torch.arange(12), layout)
    assert pred.tolist() == [-1, -1, -1, -1, 0, 1, 2, 3, 4, 5, 6, 7]


def test_predecessor_skips_frames_where_the_position_was_pruned():
    layout = TokenLayout(3, 2, 2)
    ids = torch.tensor([0, 1, 5, 8, 9])         # position 0 alive in frames 0 and 2; position 1 in 0, 1, 2
    assert ops.position_predecessors(ids, layout).tolist() == [-1, -1, 1, 0, 2]


def test_temporal_similarity_is_eq1_cosine_to_the_predecessor():
    x = torch.tensor([[1.0, 0.0], [3.0, 4.0], [2.0, 0.0], [0.0, 1.0]])
    pred = torch.tensor([-1, -1, 0, 1])
    s = ops.temporal_similarity(x, pred)
    assert s[0] == -math.inf and s[1] == -math.inf
    assert s[2].item() == pytest.approx(1.0) and s[3].item() == pytest.approx(0.8)


def test_static_set_is_the_global_top_k_without_tokens_lacking_a_predecessor():
    sim = torch.tensor([-math.inf, 0.9, 0.2, 0.9, 0.5, -math.inf])
    assert ops.static_set(sim, 2).tolist() == [False, True, False, True, False, False]
    assert ops.static_set(sim, 10).sum() == 4           # K capped at the tokens that have a predecessor


def test_overlap_ratio_is_the_share_of_a_frame_in_the_top_k():
    static = torch.tensor([False, False, False, False, True, True, True, False, True, False, False, False])
    frame = torch.arange(12) // 4
    o = ops.overlap_ratios(static, frame, 3)
    assert o.tolist() == [1.0, 0.75, 0.25]
    assert ops.segment_of_frame(o, 0.4).tolist() == [0, 0, 1]


def test_segmentation_finds_planted_scene_boundaries():
    x, ids, layout, starts = _scenes((3, 4, 2, 3))
    pred = ops.position_predecessors(ids, layout)
    static = ops.static_set(ops.temporal_similarity(x, pred), round(0.5 * ids.numel()))
    seg = ops.segment_of_frame(ops.overlap_ratios(static, layout.frame_of(ids), layout.num_frames), 0.4)
    found = torch.nonzero(torch.diff(seg, prepend=seg[:1] - 1)).flatten().tolist()
    assert found == starts


def test_segmentation_of_a_single_scene_is_one_segment():
    x, ids, layout, _ = _scenes((6,))
    pred = ops.position_predecessors(ids, layout)
    static = ops.static_set(ops.temporal_similarity(x, pred), round(0.5 * ids.numel()))
    seg = ops.segment_of_frame(ops.overlap_ratios(static, layout.frame_of(ids), layout.num_frames), 0.4)
    assert seg.tolist() == [0] * 6


def test_merging_keeps_the_first_occurrence_and_averages_the_run():
    layout = TokenLayout(4, 1, 2)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 0.0], [5.0, 5.0], [5.0, 0.0], [1.0, 2.0], [7.0, 0.0], [9.0, 9.0]])
    ids = torch.arange(8)
    pred = ops.position_predecessors(ids, layout)
    merged = torch.tensor([False, False, True, False, True, False, True, False])   # position 0 static in frames 1-3
    keep, values = ops.merge_static_runs(x, pred, merged)
    assert keep.tolist() == [0, 1, 3, 5, 7]
    torch.testing.assert_close(values[0], torch.tensor([4.0, 0.0]))                # mean of 1, 3, 5, 7
    torch.testing.assert_close(values[1:], x[[1, 3, 5, 7]])


def test_a_dynamic_token_breaks_a_static_run_into_two():
    layout = TokenLayout(4, 1, 1)
    x = torch.tensor([[1.0], [3.0], [10.0], [20.0]])
    pred = ops.position_predecessors(torch.arange(4), layout)
    keep, values = ops.merge_static_runs(x, pred, torch.tensor([False, True, False, True]))
    assert keep.tolist() == [0, 2]
    assert values.flatten().tolist() == [2.0, 15.0]


def test_merging_removes_exactly_the_top_k_tokens():
    x, ids, layout, _ = _scenes((3, 3))
    pred = ops.position_predecessors(ids, layout)
    static = ops.static_set(ops.temporal_similarity(x, pred), 40)
    keep, values = ops.merge_static_runs(x, pred, static)
    assert keep.numel() == ids.numel() - 40 and values.shape == (keep.numel(), x.shape[1])


# ---------------------------------------------------------------- eq. 4–5

def test_segment_scores_follow_eq4_with_neutral_ends():
    g = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    b = ops.segment_scores(g, 0.5)
    c, c5 = 1 / math.sqrt(2), 1 / math.sqrt(5)
    rep = [c5, c, None]             # s(g_m, ḡ_r): ḡ_r of segment 1 is (1, 2), of segment 2 is (0, 1)
    div = [None, 1 - c, 1 - c5]     # 1 - s(g_m, ḡ_l): ḡ_l of segment 2 is (1, 0), of segment 3 is (2, 1)
    rep[2] = (rep[0] + rep[1]) / 2
    div[0] = (div[1] + div[2]) / 2
    assert b.tolist() == pytest.approx([0.5 * r + 0.5 * v for r, v in zip(rep, div)])


def test_segment_score_lambda_one_is_pure_representativeness():
    g = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    b = ops.segment_scores(g, 1.0)
    assert b[0].item() == pytest.approx(float(torch.nn.functional.cosine_similarity(g[0], g[1] + g[2], 0)))


def test_segment_ratios_move_by_r_var_per_standard_deviation():
    b = torch.tensor([0.2, 0.4, 0.6])
    r = ops.segment_keep_ratios(b, 0.3, 0.1)
    z = (b - b.mean()) / b.std(correction=0)
    assert r.tolist() == pytest.approx((0.3 + 0.1 * z).tolist())
    assert ops.segment_keep_ratios(torch.tensor([0.5, 0.5]), 0.3, 0.1).tolist() == [0.3, 0.3]


@pytest.mark.parametrize("total", [4, 17, 40, 59])
def test_segment_budgets_sum_exactly_and_stay_in_range(total):
    sizes = torch.tensor([5, 20, 1, 34])
    ratios = torch.tensor([0.9, 0.1, 0.5, 0.4], dtype=torch.float64)
    k = ops.segment_budgets(ratios, sizes, total)
    assert int(k.sum()) == total
    assert (k >= 1).all() and (k <= sizes).all()


def test_segment_budgets_below_one_per_segment_still_sum_exactly():
    k = ops.segment_budgets(torch.tensor([0.9, 0.1, 0.5, 0.4], dtype=torch.float64), torch.tensor([5, 20, 1, 34]), 3)
    assert int(k.sum()) == 3 and (k <= 1).all()


def test_segment_budgets_give_more_to_a_higher_ratio():
    k = ops.segment_budgets(torch.tensor([0.6, 0.2], dtype=torch.float64), torch.tensor([50, 50]), 40)
    assert k.tolist() == [30, 10]


# ---------------------------------------------------------------- eq. 8–10

def test_relevance_is_min_max_of_the_softmax_of_scaled_dot_products():
    q = torch.tensor([1.0, 0.0, 0.0, 0.0])
    v = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    p = torch.softmax(torch.tensor([2.0, 0.0, 1.0]) / 2.0, 0)
    r = ops.relevance(q, v)
    assert r.tolist() == pytest.approx(((p - p.min()) / (p.max() - p.min())).tolist())
    assert ops.relevance(q, torch.ones(3, 4)).tolist() == [1.0, 1.0, 1.0]


def test_dpp_kernel_features_reproduce_eq9():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(6, 8, generator=g)
    r = torch.rand(6, generator=g)
    f = ops.dpp_features(v, r)
    expected = torch.diag(r) @ (v @ v.T / 8) @ torch.diag(r)
    torch.testing.assert_close(f @ f.T, expected.double())


def test_dpp_selection_meets_every_segment_budget_and_skips_duplicates():
    g = torch.Generator().manual_seed(1)
    base = torch.randn(4, 16, generator=g)
    vis = torch.cat([base, base, torch.randn(4, 16, generator=g)])      # tokens 4-7 duplicate 0-3
    seg = torch.tensor([0] * 8 + [1] * 4)
    keep = ops.dpp_select(vis, torch.ones(12), seg, torch.tensor([4, 2]))
    first = keep[keep < 8]
    assert first.numel() == 4 and (keep >= 8).sum() == 2
    assert sorted((first % 4).tolist()) == [0, 1, 2, 3]                  # one copy of each, never both
    assert torch.all(keep[1:] > keep[:-1])


def test_relevance_steers_dpp_towards_relevant_tokens():
    g = torch.Generator().manual_seed(2)
    vis = torch.nn.functional.normalize(torch.randn(10, 32, generator=g), dim=-1)
    r = torch.full((10,), 0.05)
    r[[3, 7]] = 1.0
    keep = ops.dpp_select(vis, r, torch.zeros(10, dtype=torch.long), torch.tensor([2]))
    assert keep.tolist() == [3, 7]


# ---------------------------------------------------------------- eq. 11–12

@pytest.mark.parametrize("layers,expected", [(28, 4), (24, 3), (36, 5), (4, 2), (2, 2), (1, 1)])
def test_stage_count_is_four_for_28_layers_and_scales_with_depth(layers, expected):
    assert ops.auto_stages(layers) == expected


def test_stage_starts_split_the_layers_evenly():
    assert ops.stage_starts(28, 4) == [0, 7, 14, 21]
    assert ops.stage_starts(24, 3) == [0, 8, 16]


@pytest.mark.parametrize("target", [0.3, 0.2, 0.1])
def test_stage_retentions_match_the_flops_of_the_target(target):
    d, m, n_vis, starts = 3584, 18944, 6272, [0, 7, 14, 21]
    rho = ops.stage_retentions(target, starts, 28, 0.5, n_vis, d, m)
    assert [b / a for a, b in zip(rho, rho[1:])] == pytest.approx([0.5, 0.5, 0.5])
    cost = sum(7 * layer_flops(r * n_vis, d, m) for r in rho)
    assert cost == pytest.approx(28 * layer_flops(target * n_vis, d, m), rel=1e-9)


def test_stage_retentions_cap_the_first_stage_at_everything():
    rho = ops.stage_retentions(0.9, [0, 7, 14, 21], 28, 0.5, 6272, 3584, 18944)
    assert rho[0] == 1.0 and rho[1] == 0.5
