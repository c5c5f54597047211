"""Visual and memory SharpV stages on hand-made videos (the engine-level tests are in test_sharpv_engine.py)."""
import math
from types import SimpleNamespace

import pytest
import torch

from pruning_core.errors import PlanError
from pruning_core.layout import TokenLayout
from pruning_core.methods import sharpv_ops as ops
from pruning_core.methods.sharpv import SharpVMemory, SharpVVisual
from pruning_core.registry import build_stages, get_method, parse_plan
from pruning_core.stages import LayerContext, PreContext
from pruning_core.tokens import budget

E1 = torch.tensor([1.0, 0.0])
E2 = torch.tensor([0.0, 1.0])


def visual(**params):
    return SharpVVisual("sharpv", get_method("sharpv").validate(params))


def pre_ctx(x, layout, ids=None):
    ids = torch.arange(layout.num_tokens) if ids is None else ids
    d = x.shape[-1]
    return PreContext(embeds=x, ids=ids, layout=layout, query=torch.zeros(d), text=torch.zeros(2, d))


def random_video(frames=6, h=3, w=4, d=16, seed=0, frames_per_step=1):
    layout = TokenLayout(frames, h, w, frames_per_step)
    g = torch.Generator().manual_seed(seed)
    return torch.randn(layout.num_tokens, d, generator=g), layout


def hand_made_video():
    """4 frames of 4 tokens in 2-D, built so every eq. 5 ratio is known in closed form.

    frame 0: e1 e1 e2 e2      S = √(2−√2) for all, r_0 = S/2           (eq. 6)
    frame 1: -e1 e2 e2 e2     T = 2, √2, 0, 0,    r_1 = √6/4            (eq. 5)
    frame 2: same as frame 1  T = 0,              r_2 = 0
    frame 3: frame 2 negated  T = 2 everywhere,   r_3 = 1
    """
    f0 = [E1, E1, E2, E2]
    f1 = [-E1, E2, E2, E2]
    f3 = [-v for v in f1]
    return torch.stack(f0 + f1 + f1 + f3), TokenLayout(4, 2, 2)


# ---------------------------------------------------------------- visual SharpV, worked examples

def test_frame_ratios_follow_eq5_and_eq6_on_hand_made_video():
    x, layout = hand_made_video()
    sel = visual().select(pre_ctx(x, layout))
    s0 = math.sqrt(2 - math.sqrt(2))
    assert sel.info["frame_ratios"] == pytest.approx([s0 / 2, math.sqrt(6) / 4, 0.0, 1.0], abs=1e-6)


def test_adaptive_keeps_ceil_ratio_times_f_per_frame():
    x, layout = hand_made_video()
    sel = visual(min_per_frame=1).select(pre_ctx(x, layout))
    expected = [math.ceil(4 * math.sqrt(2 - math.sqrt(2)) / 2), math.ceil(math.sqrt(6)), 1, 4]
    assert sel.info["kept_per_frame"] == expected == [2, 3, 1, 4]
    assert layout.kept_per_frame(sel.keep).tolist() == expected


def test_adaptive_keeps_highest_importance_tokens_of_each_frame():
    x, layout = hand_made_video()
    sel = visual().select(pre_ctx(x, layout))
    frame1 = sel.keep[layout.frame_of(sel.keep) == 1] - 4
    # I = T + S: -e1 (moved most) > e2 that replaced e1 > unchanged e2 (tie: earlier first)
    assert frame1.tolist() == [0, 1, 2]


def test_static_video_keeps_only_first_frame_share():
    x, layout = random_video(frames=1)
    video = x.repeat(5, 1)
    layout = TokenLayout(5, layout.grid_h, layout.grid_w)
    first = visual().select(pre_ctx(x, TokenLayout(1, layout.grid_h, layout.grid_w)))
    f = layout.tokens_per_frame
    sel = visual(min_per_frame=0).select(pre_ctx(video, layout))
    assert sel.info["kept_per_frame"] == [first.keep.numel(), 0, 0, 0, 0]
    assert torch.equal(sel.keep, first.keep)
    assert sel.info["frame_ratios"][1:] == [0.0] * 4
    assert visual().select(pre_ctx(video, layout)).info["kept_per_frame"] == [first.keep.numel(), 0, 0, 0, 0]
    # with a minimum of 1, each static frame keeps just its one most distinct token
    assert visual(min_per_frame=1).select(pre_ctx(video, layout)).info["kept_per_frame"] == \
        [first.keep.numel(), 1, 1, 1, 1]
    assert first.keep.numel() < f


def test_frame_that_changes_completely_keeps_all_tokens():
    x, layout = random_video(frames=1, d=8)
    video = torch.cat([x, x, -x])                 # frame 2 is maximally different from frame 1
    layout = TokenLayout(3, layout.grid_h, layout.grid_w)
    sel = visual().select(pre_ctx(video, layout))
    assert sel.info["frame_ratios"][2] == pytest.approx(1.0)
    assert sel.info["kept_per_frame"][2] == layout.tokens_per_frame


def test_manual_mode_keeps_exactly_tokens_above_k():
    x, layout = random_video(frames=5, d=8, seed=3)
    ids = torch.arange(layout.num_tokens)
    frame, pos = layout.frame_of(ids), ids % layout.tokens_per_frame
    s = ops.spatial_importance(x, frame, 5)
    imp = ops.importance(ops.temporal_importance(x, ops.temporal_reference(frame, pos, 5), s), s, 1.0)
    sel = visual(mode="manual", k=1.6, min_per_frame=0).select(pre_ctx(x, layout))
    assert sel.keep.tolist() == torch.nonzero(imp > 1.6).flatten().tolist()


def test_larger_k_keeps_fewer_tokens():
    x, layout = random_video(frames=5, d=8, seed=3)
    kept = [visual(mode="manual", k=k).select(pre_ctx(x, layout)).keep.numel() for k in (1.0, 1.6, 2.2)]
    assert kept[0] > kept[1] > kept[2]


def test_weight_w_changes_the_ranking_not_the_adaptive_counts():
    x, layout = random_video(frames=4, d=8, seed=5)
    a = visual(w=0.0).select(pre_ctx(x, layout))
    b = visual(w=5.0).select(pre_ctx(x, layout))
    assert a.info["kept_per_frame"] == b.info["kept_per_frame"]
    assert not torch.equal(a.keep, b.keep)


# ---------------------------------------------------------------- matched budget

@pytest.mark.parametrize("target", [0.05, 0.1, 0.25, 0.5, 0.9])
def test_target_retention_keeps_exact_budget(target):
    x, layout = random_video(frames=6, seed=2)
    sel = visual(target_retention=target).select(pre_ctx(x, layout))
    assert sel.keep.numel() == budget(target, layout.num_tokens)
    assert sel.info["retention"] == pytest.approx(sel.keep.numel() / layout.num_tokens)


def test_target_equal_to_adaptive_retention_reproduces_adaptive_selection():
    x, layout = random_video(frames=6, seed=4)
    adaptive = visual().select(pre_ctx(x, layout))
    matched = visual(target_retention=adaptive.keep.numel() / layout.num_tokens).select(pre_ctx(x, layout))
    assert torch.equal(adaptive.keep, matched.keep)


def test_target_retention_gives_more_tokens_to_frames_that_change_more():
    x, layout = random_video(frames=1, d=8)
    g = torch.Generator().manual_seed(9)
    video = torch.cat([x, x + 0.1 * torch.randn(x.shape, generator=g), -x])
    layout = TokenLayout(3, layout.grid_h, layout.grid_w)
    counts = visual(target_retention=0.4).select(pre_ctx(video, layout)).info["kept_per_frame"]
    assert counts[2] > counts[1]


def test_target_retention_counts_relative_to_original_tokens_after_earlier_stage():
    x, layout = random_video(frames=6, seed=2)
    ids = torch.arange(0, layout.num_tokens, 2)          # an earlier stage kept every other token
    sel = visual(target_retention=0.2).select(pre_ctx(x[ids], layout, ids))
    assert sel.keep.numel() == budget(0.2, layout.num_tokens)


# ---------------------------------------------------------------- invariants

@pytest.mark.parametrize("params", [{}, {"mode": "manual"}, {"target_retention": 0.3}])
def test_keep_is_ascending_unique_and_in_range(params):
    x, layout = random_video(frames=6, seed=7)
    keep = visual(**params).select(pre_ctx(x, layout)).keep
    assert keep.numel() > 0
    assert torch.equal(keep, torch.unique(keep))
    assert int(keep.min()) >= 0 and int(keep.max()) < layout.num_tokens


def test_selection_is_deterministic():
    x, layout = random_video(frames=6, seed=7)
    assert torch.equal(visual().select(pre_ctx(x, layout)).keep, visual().select(pre_ctx(x, layout)).keep)


def test_works_on_incomplete_grid_from_earlier_stage():
    x, layout = random_video(frames=6, seed=8)
    g = torch.Generator().manual_seed(1)
    ids = torch.sort(torch.randperm(layout.num_tokens, generator=g)[:40]).values
    sel = visual().select(pre_ctx(x[ids], layout, ids))
    assert int(sel.keep.max()) < ids.numel()
    alive = layout.kept_per_frame(ids)
    kept = layout.kept_per_frame(ids[sel.keep])
    assert bool((kept <= alive).all()) and bool((kept[alive > 0] >= 1).all())
    assert sel.info["alive_per_frame"] == alive.tolist()


def test_incomplete_grid_compares_with_last_alive_frame_at_same_position():
    # frame 1 lost its tokens; frame 2 equals frame 0, so it is static against it
    x, layout = random_video(frames=1, d=8)
    f = layout.tokens_per_frame
    video = torch.cat([x, torch.randn_like(x), x])
    layout = TokenLayout(3, layout.grid_h, layout.grid_w)
    ids = torch.cat([torch.arange(f), torch.arange(2 * f, 3 * f)])
    sel = visual(min_per_frame=0).select(pre_ctx(video[ids], layout, ids))
    assert sel.info["frame_ratios"][2] == pytest.approx(0.0, abs=1e-6)
    assert sel.info["kept_per_frame"][1:] == [0, 0]


def test_qwen_temporal_pair_layout_is_handled_per_pair():
    x, layout = random_video(frames=4, h=2, w=2, frames_per_step=2, seed=11)
    sel = visual().select(pre_ctx(x, layout))
    assert len(sel.info["frame_ratios"]) == 4
    assert sum(sel.info["kept_per_frame"]) == sel.keep.numel()


def test_info_is_json_serialisable():
    import json
    x, layout = random_video()
    json.dumps(visual(target_retention=0.3).select(pre_ctx(x, layout)).info)


# ---------------------------------------------------------------- registry / plans

def test_both_methods_registered_and_chainable():
    plan = parse_plan("sharpv:mode=manual,k=1.4+sharpv_memory:m=0.3,granularity=token")
    info = SimpleNamespace(num_layers=4, hidden_size=8, intermediate_size=16, num_heads=2, backbone="qwen2_vl")
    stages = build_stages(plan, info)
    assert [s.kind for s in stages] == ["pre", "cache"]
    assert stages[0].params["k"] == 1.4 and stages[1].params["granularity"] == "token"


@pytest.mark.parametrize("step", ["sharpv:mode=fast", "sharpv:target_retention=0", "sharpv:k=-1",
                                  "sharpv_memory:granularity=head", "sharpv_memory:m=2", "sharpv:bogus=1"])
def test_bad_parameters_are_plan_errors(step):
    with pytest.raises(PlanError):
        parse_plan(step)


# ---------------------------------------------------------------- memory SharpV on a hand-built prefill state

def fake_state(hidden_vis, embeds0, n_text=2):
    n, d = hidden_vis.shape
    hidden = torch.cat([torch.ones(n_text, d), hidden_vis]).unsqueeze(0)
    return SimpleNamespace(hidden=hidden, vis_pos=torch.arange(n_text, n_text + n), vis_ids=torch.arange(n),
                           vis_embeds0=embeds0, layout=TokenLayout(1, 1, n))


def drift(embeds0, cos):
    """Hidden states whose every row has cosine ``cos`` with ``embeds0`` (2-D rotation)."""
    sin = math.sqrt(max(0.0, 1 - cos * cos))
    rot = torch.tensor([[cos, sin], [-sin, cos]])
    return embeds0 @ rot


def memory(**params):
    return SharpVMemory("sharpv_memory", get_method("sharpv_memory").validate(params))


def test_memory_withdraws_exactly_after_first_layer_below_m():
    v = torch.stack([E1, E2, E1 + E2])
    st = memory()
    out = [st.after_layer(LayerContext(layer, fake_state(drift(v, c), v))) for layer, c in
           enumerate([0.9, 0.5, 0.21, 0.19])]
    assert out[:3] == [None, None, None]
    assert out[3].drop.tolist() == [0, 1, 2] and out[3].evict_layers == []


def test_memory_can_evict_the_measured_layer_too():
    v = torch.stack([E1, E2])
    out = memory(evict_measured_layer=True).after_layer(LayerContext(5, fake_state(drift(v, 0.1), v)))
    assert out.evict_layers == [5]


def test_memory_token_granularity_drops_only_degraded_tokens():
    v = torch.stack([E1, E2, E1])
    h = torch.stack([E1, E1, -E1])                 # cos 1, 0, -1
    out = memory(granularity="token").after_layer(LayerContext(0, fake_state(h, v)))
    assert out.drop.tolist() == [1, 2]


def test_memory_records_similarity_curve_and_restarts_for_a_new_prefill():
    v = torch.stack([E1, E2])
    st = memory(m=-1.0)                            # never withdraws: the whole Fig. 3 curve
    for run in range(2):
        for layer, c in enumerate([0.9, 0.6, 0.3]):
            st.after_layer(LayerContext(layer, fake_state(drift(v, c), v)))
    cache = SimpleNamespace(num_layers=3, visual_ids=lambda l: torch.tensor([-1, 0, 1]))
    info = st.after_prefill(cache)
    assert [l for l, _ in info["similarity"]] == [0, 1, 2]
    assert [s for _, s in info["similarity"]] == pytest.approx([0.9, 0.6, 0.3], abs=1e-5)
    assert info["first_withdrawn_layer"] is None and info["memory_ratio"] == 1.0
