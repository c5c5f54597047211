"""ShaRP's equations on small hand-made tensors (ShaRP.txt §4.1–4.3)."""
from __future__ import annotations

import math

import pytest
import torch

from pruning_core.methods import sharp_ops as ops
from pruning_core.tokens import normalize, topk_ordered
from sharp_reference import mask_reference, regd_reference, segments_reference


def unit(deg: float) -> torch.Tensor:
    """A 2-D unit vector at ``deg`` degrees: cos(unit(a), unit(b)) = cos(a − b)."""
    r = math.radians(deg)
    return torch.tensor([math.cos(r), math.sin(r)])


def clustered(n: int, d: int, protos: int, noise: float, seed: int) -> torch.Tensor:
    """Tokens scattered around a few prototypes, so every RegD threshold is crossed somewhere."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(protos, d, generator=g)
    which = torch.randint(0, protos, (n,), generator=g)
    return centers[which] + noise * torch.randn(n, d, generator=g)


# ---------------------------------------------------------------- SegM: eq. 3


def test_boundary_appears_exactly_where_frame_similarity_drops_below_tau_seg():
    # consecutive frame-mean similarities: cos 18° ≈ 0.951, cos 32° ≈ 0.848, cos 8° ≈ 0.990
    angles = [0.0, 18.0, 50.0, 58.0]
    frames = torch.stack([unit(a) for a in angles])
    seg, sim = ops.frame_segments(frames, torch.ones(4, dtype=torch.bool), tau_seg=0.9)
    assert torch.allclose(sim, torch.tensor([math.cos(math.radians(a)) for a in (18, 32, 8)]), atol=1e-6)
    assert seg.tolist() == [0, 0, 1, 1]


def test_boundary_threshold_is_strict_at_the_similarity_value():
    frames = torch.stack([unit(0.0), unit(40.0)])
    _, sim = ops.frame_segments(frames, torch.ones(2, dtype=torch.bool), 0.0)
    just_below, just_above = float(sim[0]) - 1e-6, float(sim[0]) + 1e-6
    present = torch.ones(2, dtype=torch.bool)
    assert ops.frame_segments(frames, present, just_below)[0].tolist() == [0, 0]
    assert ops.frame_segments(frames, present, just_above)[0].tolist() == [0, 1]


def test_frames_are_compared_through_their_token_means():
    # each frame's two tokens point away from the frame direction; only their mean does not
    tokens = torch.stack([unit(-40), unit(40), unit(-40), unit(40), unit(50), unit(130)])
    frame = torch.tensor([0, 0, 1, 1, 2, 2])
    seg, _ = ops.token_segments(tokens, frame, 3, tau_seg=0.9)
    assert seg.tolist() == [0, 0, 0, 0, 1, 1]
    assert seg.tolist() == segments_reference(tokens, frame.tolist(), 0.9)


def test_frame_without_tokens_neither_splits_nor_joins_segments():
    means = torch.stack([unit(0), unit(90), unit(5)])
    present = torch.tensor([True, False, True])
    seg, sim = ops.frame_segments(means, present, 0.9)
    assert sim.numel() == 1 and seg[0] == seg[2] == 0


def test_token_segments_match_reference_on_random_frames():
    x = clustered(60, 8, protos=3, noise=0.3, seed=3)
    frame = torch.arange(60) // 5
    seg, _ = ops.token_segments(x, frame, 12, tau_seg=0.9)
    assert seg.tolist() == segments_reference(x, frame.tolist(), 0.9)


# ---------------------------------------------------------------- SegM: eq. 4


def test_segment_mask_equals_brute_force_mask_for_a_contiguous_video_block():
    # 3 prompt tokens, 9 visual tokens in segments 0,0,0,1,1,2,2,2,2, 4 text tokens after
    vis_pos = torch.arange(3, 12)
    seg = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    got = ops.segment_mask(16, vis_pos, seg)
    assert torch.equal(got, mask_reference(16, vis_pos.tolist(), seg.tolist()))


def test_segment_mask_equals_brute_force_mask_with_text_inside_the_video_block():
    vis_pos = torch.tensor([2, 3, 4, 6, 7, 9, 10])       # positions 5 and 8 are text between frames
    seg = torch.tensor([0, 0, 1, 1, 1, 2, 2])
    got = ops.segment_mask(13, vis_pos, seg)
    assert torch.equal(got, mask_reference(13, vis_pos.tolist(), seg.tolist()))


def test_segment_mask_lets_text_after_the_video_see_every_segment():
    vis_pos = torch.arange(1, 7)
    seg = torch.tensor([0, 0, 1, 1, 2, 2])
    m = ops.segment_mask(9, vis_pos, seg)
    assert m[7, :8].all() and m[8].all()
    assert m[5, 0] and not m[5, 1] and not m[5, 3] and m[5, 5]   # sees the prompt and its own segment only


def test_segment_mask_with_one_segment_is_plain_causal():
    m = ops.segment_mask(8, torch.arange(2, 6), torch.zeros(4, dtype=torch.long))
    assert torch.equal(m, torch.ones(8, 8, dtype=torch.bool).tril())


# ---------------------------------------------------------------- PosC: eq. 5


def test_debias_subtracts_lambda_times_the_bias():
    scores = torch.tensor([0.50, 0.30, 0.20])
    bias = torch.tensor([0.50, 0.10, 0.00])
    got = ops.debias(scores, bias, lam=0.6)
    assert torch.allclose(got, torch.tensor([0.20, 0.24, 0.20]))
    # the ranking follows the debiased score: the positionally favoured token 0 loses its place
    assert topk_ordered(scores, 1).tolist() == [0]
    assert topk_ordered(got, 1).tolist() == [1]


def test_debias_with_lambda_zero_keeps_the_scores():
    scores = torch.rand(7)
    assert torch.equal(ops.debias(scores, torch.rand(7), 0.0), scores)


# ---------------------------------------------------------------- RegD (1): pre-filtering


def test_prefilter_absorbs_into_the_most_similar_register_of_the_same_segment_above_tau():
    # registers at 0° and 90° (segment 0) and 0° (segment 1)
    x = torch.stack([unit(0), unit(40), unit(30), unit(90), unit(80), unit(50), unit(0), unit(10)])
    seg = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1])
    reg = torch.tensor([0, 3, 6])
    nonreg = torch.tensor([1, 2, 4, 5, 7])
    got = ops.prefilter(normalize(x), seg, reg, nonreg, tau_filter=0.7)
    # 40°: cos 40° = 0.766 to reg 0 > 0.7 → reg 0 (position 0)
    # 30°: 0.866 to reg 0 → position 0;  80°: 0.985 to reg 3 → position 1
    # 50°: cos 50° = 0.643 and cos 40° = 0.766 → nearest is reg 3 (position 1)
    # 10° in segment 1: 0.985 to reg 6 → position 2
    assert got.tolist() == [0, 0, 1, 1, 2]


def test_prefilter_keeps_tokens_at_or_below_tau_and_never_crosses_segments():
    x = torch.stack([unit(0), unit(60), unit(5)])
    seg = torch.tensor([0, 0, 1])
    got = ops.prefilter(normalize(x), seg, torch.tensor([0]), torch.tensor([1, 2]), tau_filter=0.5 + 1e-6)
    assert got.tolist() == [-1, -1]   # cos 60° = 0.5 is not above τ; 5° is in another segment


# ---------------------------------------------------------------- RegD (2): deduplication


def test_dedup_absorbs_exactly_the_tokens_above_tau_merge_against_the_current_pivot():
    # 0°,30°: cos 30° = 0.866 > 0.8 → absorbed; 60° vs pivot 0°: 0.5 → new pivot (against the
    # adjacent 30° it would have merged); 90° vs 60°: 0.866 → absorbed; 150° → new pivot.
    x = torch.stack([unit(a) for a in (0, 30, 60, 90, 150)])
    pivot = ops.pivot_scan(normalize(x), torch.zeros(5, dtype=torch.long), tau=0.8)
    assert pivot.tolist() == [0, 0, 2, 2, 4]


def test_dedup_starts_a_new_pivot_at_every_segment_start():
    x = torch.stack([unit(0), unit(1), unit(2), unit(3)])
    pivot = ops.pivot_scan(normalize(x), torch.tensor([0, 0, 1, 1]), tau=0.8)
    assert pivot.tolist() == [0, 0, 2, 2]


@pytest.mark.parametrize("tau,noise", [(0.8, 0.3), (0.4, 0.6), (0.0, 1.0), (0.95, 0.1)])
def test_pivot_scan_equals_the_sequential_loop_including_runs_longer_than_the_band(tau, noise):
    x = clustered(300, 6, protos=2, noise=noise, seed=int(tau * 100))
    x, _ = torch.sort(x, dim=0)   # long similar runs
    group = torch.sort(torch.randint(0, 4, (300,), generator=torch.Generator().manual_seed(1))).values
    xn = normalize(x)
    expect, p = [], None
    for i in range(300):
        if p is None or group[i] != group[p] or float(xn[p] @ xn[i]) <= tau:
            p = i
        expect.append(p)
    assert ops.pivot_scan(xn, group, tau, band=4, block=16).tolist() == expect
    assert ops.pivot_scan(xn, group, tau).tolist() == expect


# ---------------------------------------------------------------- RegD (3): post-filling, eq. 6


def test_diversity_score_matches_eq6_by_hand():
    regs = torch.stack([unit(0), unit(90)])                # H'_reg of segment 0
    cands = torch.stack([unit(0), unit(45), unit(180)])
    size = torch.tensor([3, 1, 2])
    got = ops.diversity(cands, torch.zeros(3, dtype=torch.long), regs, torch.zeros(2, dtype=torch.long),
                        size, beta=0.008, n_seg=1)
    # unit(0): mean sim (1 + 0)/2 = 0.5 → 0.5 + 0.024; unit(45): mean 0.7071 → 0.2929 + 0.008;
    # unit(180): mean (−1 + 0)/2 → 1.5 + 0.016
    expect = torch.tensor([0.524, 1 - math.sqrt(0.5) + 0.008, 1.516])
    assert torch.allclose(got, expect, atol=1e-6)


def test_diversity_uses_only_the_registers_of_the_candidates_segment():
    regs = torch.stack([unit(0), unit(180)])
    got = ops.diversity(torch.stack([unit(0), unit(0)]), torch.tensor([0, 1]), regs, torch.tensor([0, 1]),
                        torch.ones(2, dtype=torch.long), beta=0.0, n_seg=2)
    assert torch.allclose(got, torch.tensor([0.0, 2.0]), atol=1e-6)


def _two_step_segment():
    """One segment: registers 0°,10°,20° (dedup keeps 0° and absorbs the other two), non-registers
    at 100°, 105° (one cluster of 2) and 200° (a cluster of 1); τ_filter high so none pre-filters."""
    x = torch.stack([unit(a) for a in (0, 10, 20, 100, 105, 200)])
    score = torch.tensor([0.9, 0.8, 0.7, 0.1, 0.1, 0.1])
    return x, torch.zeros(6, dtype=torch.long), torch.tensor([0, 1, 2]), score


def test_postfill_restores_the_segment_budget_with_the_most_diverse_cluster_centers():
    x, seg, reg, score = _two_step_segment()
    out = ops.regd(x, seg, reg, score, tau_filter=0.99, tau_merge=0.8, tau_cluster=0.4, beta=0.008)
    # dedup absorbed 2 → two refills: centers 100° (Div 1 − cos100° + 2β) and 200° (1 − cos200° + β)
    assert out.keep.tolist() == [0, 3, 5]
    assert out.info == {"prefiltered": 0, "deduplicated": 2, "clusters": 2, "filled_centers": 2,
                        "filled_members": 0, "restored_registers": 0}


def test_postfill_picks_the_highest_eq6_score_when_clusters_outnumber_the_deficit():
    # registers 0°,10° → deficit 1; clusters: {60°} and {170°, 175°}; Div(60°) = 0.5 + β,
    # Div(170°) = 1 − cos 170° + 2β ≈ 1.98 → 170° wins
    x = torch.stack([unit(a) for a in (0, 10, 60, 170, 175)])
    out = ops.regd(x, torch.zeros(5, dtype=torch.long), torch.tensor([0, 1]), torch.zeros(5),
                   tau_filter=0.99, tau_merge=0.8, tau_cluster=0.4, beta=0.008)
    assert out.keep.tolist() == [0, 3]


def test_postfill_falls_back_to_cluster_members_then_to_absorbed_registers():
    # 4 registers all merge into the first (deficit 3); one non-register cluster of 1 → 1 center,
    # no other members → the best-scored absorbed registers come back
    x = torch.stack([unit(a) for a in (0, 5, 10, 15, 120)])
    score = torch.tensor([0.9, 0.2, 0.8, 0.5, 0.0])
    out = ops.regd(x, torch.zeros(5, dtype=torch.long), torch.tensor([0, 1, 2, 3]), score,
                   tau_filter=0.99, tau_merge=0.8, tau_cluster=0.4, beta=0.008)
    assert out.keep.tolist() == [0, 2, 3, 4]
    assert (out.info["filled_centers"], out.info["filled_members"], out.info["restored_registers"]) == (1, 0, 2)


def test_merged_tokens_become_the_size_weighted_mean_of_their_group():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.2], [0.0, 1.0], [0.9, 0.1]])
    # register 0 absorbs register 1 (dedup) and non-register 3 (pre-filter); 2 is refilled
    out = ops.regd(x, torch.zeros(4, dtype=torch.long), torch.tensor([0, 1]), torch.tensor([1.0, 0.9, 0.0, 0.0]),
                   tau_filter=0.7, tau_merge=0.8, tau_cluster=0.4, beta=0.008)
    assert out.keep.tolist() == [0, 2]
    assert out.target.tolist() == [0, 0, 1, 0]
    assert torch.allclose(out.values, torch.stack([x[[0, 1, 3]].mean(0), x[2]]))


# ---------------------------------------------------------------- RegD end to end vs the per-token loop


# τ_cluster −0.5 makes one cluster per segment, so the member and restore fallbacks run too
@pytest.mark.parametrize("seed,tau_cluster", [(0, 0.4), (1, 0.4), (2, 0.4), (3, 0.4), (0, -0.5), (4, -0.5)])
def test_regd_equals_the_per_token_reference(seed, tau_cluster):
    n = 120
    x = clustered(n, 12, protos=5, noise=0.45, seed=seed)
    seg = torch.sort(torch.randint(0, 3, (n,), generator=torch.Generator().manual_seed(seed))).values
    score = torch.rand(n, generator=torch.Generator().manual_seed(seed + 10))
    reg = topk_ordered(score, 30)
    out = ops.regd(x, seg, reg, score, 0.7, 0.8, tau_cluster, 0.008)
    kept, owner = regd_reference(x, seg.tolist(), reg.tolist(), score.tolist(), 0.7, 0.8, tau_cluster, 0.008)
    assert out.keep.tolist() == kept
    own = torch.tensor(owner)
    assert torch.equal(torch.where(out.target >= 0, out.keep[out.target.clamp_min(0)], out.target), own)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regd_keeps_every_segments_top_k_count_exactly(seed):
    n = 200
    x = clustered(n, 8, protos=3, noise=0.2, seed=seed)     # very redundant: dedup merges a lot
    seg = torch.sort(torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(seed))).values
    score = torch.rand(n, generator=torch.Generator().manual_seed(seed))
    reg = topk_ordered(score, 50)
    out = ops.regd(x, seg, reg, score, 0.7, 0.8, 0.4, 0.008)
    assert torch.equal(torch.bincount(seg[out.keep], minlength=4), torch.bincount(seg[reg], minlength=4))
    assert out.keep.numel() == 50
    assert bool((out.keep[1:] > out.keep[:-1]).all())


def test_regd_is_deterministic():
    x = clustered(150, 8, protos=4, noise=0.4, seed=7)
    seg = torch.arange(150) // 50
    score = torch.rand(150, generator=torch.Generator().manual_seed(7))
    reg = topk_ordered(score, 40)
    a = ops.regd(x, seg, reg, score, 0.7, 0.8, 0.4, 0.008)
    b = ops.regd(x.clone(), seg.clone(), reg.clone(), score.clone(), 0.7, 0.8, 0.4, 0.008)
    assert torch.equal(a.keep, b.keep) and torch.equal(a.values, b.values)


def test_a_similarity_equal_to_tau_does_not_merge():
    # "absorbed if their similarity exceeds τ": orthogonal unit vectors have cos exactly 0
    x = torch.eye(3)
    assert ops.pivot_scan(x, torch.zeros(3, dtype=torch.long), tau=0.0).tolist() == [0, 1, 2]
    assert ops.pivot_scan(x, torch.zeros(3, dtype=torch.long), tau=-1e-6).tolist() == [0, 0, 0]
