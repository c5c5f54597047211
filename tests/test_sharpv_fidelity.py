"""SharpV readings: the metric of manual mode (Dissim or 1 − cos with a fixed K) and static frames vanishing."""
from __future__ import annotations

import pytest
import torch

from pruning_core.methods import sharpv_ops as ops
from test_sharpv import hand_made_video, pre_ctx, random_video, visual


def test_one_minus_cos_is_half_the_squared_dissim():
    a, b = torch.randn(5, 8), torch.randn(5, 8)
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    torch.testing.assert_close(ops.as_metric(ops.dissim(a, b), "one_minus_cos"), 1 - cos, atol=1e-6, rtol=1e-5)


def test_manual_mode_thresholds_the_importance_of_the_chosen_metric():
    x, layout = random_video(frames=4, d=16, seed=3)
    for metric in ("dissim", "one_minus_cos"):
        sel = visual(mode="manual", k=0.9, metric=metric).select(pre_ctx(x, layout))
        frame = layout.frame_of(torch.arange(layout.num_tokens))
        xn = torch.nn.functional.normalize(x, dim=-1)
        means = torch.stack([x[frame == t].mean(0) for t in range(layout.num_frames)])
        s = ops.as_metric((xn - torch.nn.functional.normalize(means, dim=-1)[frame]).norm(dim=-1), metric)
        prev = torch.arange(layout.num_tokens) - layout.tokens_per_frame
        t = torch.where(prev >= 0, ops.as_metric((xn - xn[prev.clamp(min=0)]).norm(dim=-1), metric), s)
        assert sel.info["metric"] == metric
        assert sel.keep.tolist() == ((t + s) > 0.9).nonzero().squeeze(1).tolist()


def test_one_minus_cos_keeps_fewer_tokens_at_the_same_k():
    """1 − cos ≤ Dissim wherever Dissim ≤ 2, so a fixed K keeps fewer tokens under 1 − cos."""
    x, layout = random_video(frames=5, d=16, seed=4)
    a = visual(mode="manual", k=1.6, metric="dissim").select(pre_ctx(x, layout)).keep
    b = visual(mode="manual", k=1.6, metric="one_minus_cos").select(pre_ctx(x, layout)).keep
    assert set(b.tolist()) <= set(a.tolist()) and b.numel() < a.numel()


def test_by_default_a_static_frame_vanishes():
    x, layout = hand_made_video()
    video = torch.cat([x[: layout.tokens_per_frame]] * 3)
    from pruning_core.layout import TokenLayout
    lay = TokenLayout(3, layout.grid_h, layout.grid_w)
    kept = visual().select(pre_ctx(video, lay)).info["kept_per_frame"]
    assert kept[1:] == [0, 0] and kept[0] > 0


def test_memory_ratio_is_relative_to_the_tokens_the_memory_stage_received(tiny_any):
    """Table 3: MR is the same 39 % for rows whose VR differs, and token budget = VR × MR."""
    from test_sharpv_engine import similarity_curve, threshold_first_below_at
    m, j = threshold_first_below_at(similarity_curve(tiny_any))
    res = tiny_any.engine.run(tiny_any.prep, f"random:retention=0.5+sharpv_memory:m={m}", max_new_tokens=1)
    info = res.stages[-1].info
    vr = res.stages[0].retention
    n_layers = tiny_any.adapter.info.num_layers
    assert info["memory_ratio"] == pytest.approx(sum(info["visual_kv_entries"]) / (res.stages[0].kept * n_layers))
    assert info["token_budget"] == pytest.approx(vr * info["memory_ratio"], abs=1e-6)
