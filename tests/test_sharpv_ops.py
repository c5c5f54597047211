"""SharpV math on hand-made tensors: each test is one equation or one rule of the paper."""
import math

import pytest
import torch

from pruning_core.methods import sharpv_ops as ops
from pruning_core.tokens import allocate_proportional

E1 = torch.tensor([1.0, 0.0])
E2 = torch.tensor([0.0, 1.0])


def test_dissim_equals_sqrt_2_minus_2cos():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(50, 16, generator=g), torch.randn(50, 16, generator=g)
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    assert torch.allclose(ops.dissim(a, b), torch.sqrt(2 - 2 * cos), atol=1e-5)


def test_dissim_is_zero_for_same_direction_and_two_for_opposite():
    v = torch.tensor([[3.0, 4.0]])
    assert ops.dissim(v, 5 * v).item() == pytest.approx(0.0, abs=1e-7)
    assert ops.dissim(v, -v).item() == pytest.approx(2.0)


def test_dissim_resolves_nearly_aligned_vectors():
    # 2-2cos cancels to 0 in fp32 here; the unit-vector difference keeps the angle
    a = torch.tensor([[1.0, 0.0]])
    b = torch.tensor([[1.0, 1e-4]])
    assert ops.dissim(a, b).item() == pytest.approx(1e-4, rel=1e-3)


def test_spatial_importance_is_dissim_to_frame_mean():
    x = torch.stack([E1, E2, E1, E1])
    frame = torch.tensor([0, 0, 1, 1])
    s = ops.spatial_importance(x, frame, 2)
    half = math.sqrt(2 - 2 * math.cos(math.pi / 4))   # e1 vs (e1+e2)/2
    assert torch.allclose(s, torch.tensor([half, half, 0.0, 0.0]), atol=1e-6)


def test_temporal_reference_is_same_position_in_previous_frame():
    frame = torch.tensor([0, 0, 1, 1, 2, 2])
    pos = torch.tensor([0, 1, 0, 1, 0, 1])
    assert ops.temporal_reference(frame, pos, 3).tolist() == [-1, -1, 0, 1, 2, 3]


def test_temporal_reference_skips_to_latest_alive_frame_on_incomplete_grid():
    # position 1 was removed from frame 1 by an earlier stage; frame 2 compares with frame 0
    frame = torch.tensor([0, 0, 1, 2, 2])
    pos = torch.tensor([0, 1, 0, 0, 1])
    assert ops.temporal_reference(frame, pos, 3).tolist() == [-1, -1, 0, 2, 1]


def test_first_frame_temporal_importance_equals_spatial():
    x = torch.stack([E1, E2, -E1, E2])
    frame, pos = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])
    s = ops.spatial_importance(x, frame, 2)
    t = ops.temporal_importance(x, ops.temporal_reference(frame, pos, 2), s)
    assert torch.equal(t[:2], s[:2])
    assert torch.allclose(t[2:], torch.tensor([2.0, 0.0]), atol=1e-6)


def test_importance_is_t_plus_w_s():
    t, s = torch.tensor([0.5, 1.0]), torch.tensor([0.25, 2.0])
    assert torch.allclose(ops.importance(t, s, 2.0), torch.tensor([1.0, 5.0]))


def test_frame_ratio_is_norm_of_t_over_2_sqrt_f():
    t = torch.tensor([2.0, 2.0, 2.0, 2.0, 2.0, 0.0, 0.0, 1.0])
    frame = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    r = ops.frame_ratios(t, frame, 2)
    assert r.tolist() == pytest.approx([1.0, math.sqrt(5) / 4])


def test_adaptive_counts_ceil_and_clamp():
    r = torch.tensor([0.0, 0.26, 0.5, 1.0])
    alive = torch.tensor([4, 4, 4, 4])
    assert ops.adaptive_counts(r, alive, 1).tolist() == [1, 2, 2, 4]
    assert ops.adaptive_counts(r, alive, 0).tolist() == [0, 2, 2, 4]
    # an empty frame keeps nothing even with a minimum
    assert ops.adaptive_counts(r, torch.tensor([0, 4, 4, 4]), 1).tolist() == [0, 2, 2, 4]


def test_adaptive_counts_do_not_round_up_float_noise():
    r = torch.tensor([0.5 + 1e-9])
    assert ops.adaptive_counts(r, torch.tensor([4]), 0).tolist() == [2]


def test_threshold_counts_count_tokens_above_k():
    imp = torch.tensor([2.0, 1.0, 1.7, 0.1, 0.2, 0.3])
    frame = torch.tensor([0, 0, 0, 1, 1, 1])
    assert ops.threshold_counts(imp, frame, 2, 1.6, 1).tolist() == [2, 1]
    assert ops.threshold_counts(imp, frame, 2, 1.6, 0).tolist() == [2, 0]


def test_ensure_nonempty_keeps_the_best_token_when_all_counts_are_zero():
    imp = torch.tensor([0.1, 0.9, 0.2])
    frame = torch.tensor([0, 1, 1])
    assert ops.ensure_nonempty(torch.tensor([0, 0]), imp, frame).tolist() == [0, 1]


def test_degraded_layer_granularity_uses_the_mean():
    sim = torch.tensor([0.5, 0.0, -0.1])         # mean 0.133 < 0.2
    assert ops.degraded(sim, 0.2, "layer").tolist() == [True, True, True]
    assert ops.degraded(sim + 0.2, 0.2, "layer").tolist() == [False, False, False]


def test_degraded_token_granularity_is_per_token():
    sim = torch.tensor([0.5, 0.1, 0.3])
    assert ops.degraded(sim, 0.2, "token").tolist() == [False, True, False]


def test_visual_similarity_is_rowwise_cosine():
    h = torch.stack([E1, E2, E1 + E2])
    v = torch.stack([E1, E1, E1])
    assert ops.visual_similarity(h, v).tolist() == pytest.approx([1.0, 0.0, 1 / math.sqrt(2)], abs=1e-6)


# ---------------------------------------------------------------- tokens.allocate_proportional

def test_allocate_proportional_hits_total_exactly_within_caps():
    w = torch.tensor([0.1, 3.0, 1.0, 0.0, 7.0])
    caps = torch.tensor([5, 5, 5, 5, 5])
    for total in range(0, 26):
        c = allocate_proportional(w, caps, total, minimum=1)
        assert int(c.sum()) == total
        assert bool((c <= caps).all())
        if total >= 5:
            assert bool((c >= 1).all())


def test_allocate_proportional_reproduces_ceil_of_target_counts():
    w = torch.tensor([1.3, 0.2, 2.0, 3.7])          # ceil -> 2, 1, 2, 4: sum 9
    c = allocate_proportional(w, torch.tensor([4, 4, 4, 4]), 9)
    assert c.tolist() == [2, 1, 2, 4]


def test_allocate_proportional_scales_with_weights():
    c = allocate_proportional(torch.tensor([1.0, 2.0, 1.0]), torch.tensor([100, 100, 100]), 40)
    assert c.tolist() == [10, 20, 10]


def test_allocate_proportional_gives_minimum_slots_to_largest_weights_first():
    c = allocate_proportional(torch.tensor([0.0, 5.0, 1.0]), torch.tensor([3, 3, 3]), 2, minimum=1)
    assert c.tolist() == [0, 1, 1]
