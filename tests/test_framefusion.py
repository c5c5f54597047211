"""FrameFusion: merge into the previous frame's same-position token, then prune by attention so the
mean alive share over all layers (ShaRP §5.1's equivalent retention) meets the cost."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reference import unpruned_state

from pruning_core.adapters.base import ModelInfo
from pruning_core.layout import TokenLayout
from pruning_core.methods.framefusion import (build, merge_decision, merge_roots, merge_selection,
                                              predecessor_similarity, pruning_ratio)
from pruning_core.registry import get_method
from pruning_core.stages import PreContext
from framefusion_reference import merge_step_reference


def _info(backbone: str, layers: int = 28) -> ModelInfo:
    return ModelInfo(backbone, layers, 64, 128, 4, 2, 16)


# ---------------------------------------------------------------- worked examples

def test_similarity_is_with_the_same_position_in_the_previous_frame():
    # 3 frames of a 1x2 grid; ids 0,1 | 2,3 | 4,5
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0],      # frame 0
                      [1.0, 0.0], [1.0, 0.0],      # frame 1: pos 0 same as before, pos 1 orthogonal
                      [1.0, 1.0], [1.0, 0.0]])     # frame 2
    sim = predecessor_similarity(x, torch.arange(6), tokens_per_frame=2)
    h = 2 ** -0.5
    torch.testing.assert_close(sim, torch.tensor([-2.0, -2.0, 1.0, 0.0, h, 1.0]))


def test_after_pruning_the_predecessor_is_the_nearest_alive_earlier_frame():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    ids = torch.tensor([0, 4, 6])                  # 1x2 grid, position 0 of frames 0, 2, 3 (frame 1's was pruned)
    sim = predecessor_similarity(x, ids, tokens_per_frame=2)
    torch.testing.assert_close(sim, torch.tensor([-2.0, 0.0, 0.8]))


def test_a_chain_of_merges_lands_in_its_first_unmerged_token():
    ids = torch.arange(8)                          # 4 frames x 2 positions
    merge = torch.tensor([False, False, True, False, True, False, False, True])
    roots = merge_roots(merge, ids, tokens_per_frame=2)
    # position 0: 0 ← 2 ← 4 (frame 3's token 6 is unmerged); position 1: 1, 3, 5 ← 7
    assert roots.tolist() == [0, 1, 0, 3, 0, 5, 6, 5]


def test_merged_value_is_the_size_weighted_mean():
    x = torch.tensor([[0.0, 0.0], [3.0, 3.0], [6.0, 6.0]])
    ids = torch.tensor([0, 1, 2])                  # one position, 3 frames
    sizes = torch.tensor([2.0, 1.0, 1.0])          # token 0 already holds two tokens
    merge = torch.tensor([False, True, True])
    keep, values, new_sizes = merge_selection(x, sizes, merge, ids, tokens_per_frame=1)
    assert keep.tolist() == [0]
    torch.testing.assert_close(values, torch.tensor([[2.25, 2.25]]))   # (2·0 + 3 + 6) / 4
    assert new_sizes.tolist() == [4.0]


def test_pruning_ratio_is_framefusions_cost_formula():
    # cost 0.3 over 28 layers, nothing run yet, everything alive: keep 0.3 in every layer
    assert pruning_ratio([], 1.0, 0.3, 28) == pytest.approx(0.7)
    # their sparsity list [0.2, 0.25]: layers ran at s = 0.8 and 0.6; now 0.6 is alive
    # remain = 28·0.3 - (0.8 + 0.6) = 7.0 over 26 layers → 1 - 7.0 / (26 · 0.6)
    assert pruning_ratio([0.8, 0.6], 0.6, 0.3, 28) == pytest.approx(1 - 7.0 / (26 * 0.6))


def test_spent_budget_prunes_everything_it_can():
    assert pruning_ratio([1.0, 1.0], 1.0, 0.05, 4) == 1.0


def test_merge_decision_merges_all_candidates_below_the_bound():
    sim = torch.tensor([-2.0, 0.7, 0.2, 0.9])
    merge, reached = merge_decision(sim, threshold=0.6, upper=0.75)
    assert merge.tolist() == [False, True, False, True] and not reached


def test_merge_decision_stops_at_the_budget_with_the_most_similar():
    sim = torch.tensor([-2.0, 0.7, 0.65, 0.9, 0.95, -2.0])
    merge, reached = merge_decision(sim, threshold=0.6, upper=0.5)   # 4 candidates ≥ 3 = 0.5·6
    assert merge.tolist() == [False, True, False, True, True, False] and reached   # 0.95, 0.9, 0.7


def test_threshold_defaults_to_0_6_and_0_5_for_qwen2_vl():
    spec = get_method("framefusion")
    p = spec.validate({})
    assert build(p, _info("llava_onevision"))[0].run.threshold == 0.6
    assert build(p, _info("qwen2_vl"))[0].run.threshold == 0.5
    assert build(p, _info("qwen2_5_vl"))[0].run.threshold == 0.5
    assert build(spec.validate({"threshold": 0.8}), _info("qwen2_vl"))[0].run.threshold == 0.8


def test_layer_count_comes_from_the_model():
    p = get_method("framefusion").validate({})
    for layers in (4, 24, 28, 36):
        stages = build(p, _info("llava_onevision", layers))
        assert [getattr(s, "layer", 0) for s in stages] == list(range(layers))
        assert stages[0].run.num_layers == layers


def test_layer0_merge_on_a_static_video_keeps_the_first_frame_holding_the_means():
    layout = TokenLayout(num_frames=3, grid_h=2, grid_w=2)
    g = torch.Generator().manual_seed(0)
    frame = torch.randn(4, 8, generator=g)
    embeds = torch.cat([frame, 2.0 * frame, 3.0 * frame])          # same directions: similarity 1
    p = get_method("framefusion").validate({"retention": 0.25})
    pre = build(p, _info("llava_onevision", 4))[0]
    ctx = PreContext(embeds=embeds, ids=torch.arange(12), layout=layout, query=embeds[0], text=embeds[:1])
    sel = pre.select(ctx)
    # 4 layers at cost 0.25: up to 75% may go, so all 8 later-frame tokens merge into frame 0
    assert sel.info["merged"] == 8 and sel.keep.tolist() == [0, 1, 2, 3]
    torch.testing.assert_close(sel.values, 2.0 * frame)                 # (1 + 2 + 3) / 3


@pytest.mark.parametrize("upper", [0.9, 0.1])
def test_batched_merge_step_equals_the_per_token_reference(upper):
    """Random video-like tokens, some already pruned, sizes from earlier merges."""
    g = torch.Generator().manual_seed(3)
    frames, tpf, d = 5, 9, 16
    base = torch.randn(tpf, d, generator=g)
    x = torch.cat([base + 0.3 * f * torch.randn(tpf, d, generator=g) for f in range(frames)])
    ids = torch.sort(torch.randperm(frames * tpf, generator=g)[:36]).values
    x = x[ids]
    sizes = torch.randint(1, 4, (36,), generator=g).float()
    sim = predecessor_similarity(x, ids, tpf)
    merge, reached = merge_decision(sim, 0.6, upper)
    keep, values, new_sizes = merge_selection(x, sizes, merge, ids, tpf)
    ref_keep, ref_rows, ref_sizes, ref_reached = merge_step_reference(x, ids, sizes, tpf, 0.6, upper)
    assert keep.tolist() == ref_keep and reached == ref_reached
    torch.testing.assert_close(values.double(), ref_rows, atol=1e-5, rtol=1e-5)
    assert new_sizes.tolist() == ref_sizes


# ---------------------------------------------------------------- through the engine

def _static_prep(s):
    fr = np.repeat(s.frames[:1], s.frames.shape[0], 0)
    return s.engine.prepare(fr, "what colour is the circle ?")


@pytest.mark.parametrize("cost", [0.5, 0.3])
def test_mean_alive_share_over_all_layers_meets_the_cost(tiny_any, cost):
    res = tiny_any.engine.run(tiny_any.prep, f"framefusion:retention={cost}", max_new_tokens=1)
    n, L = res.visual_tokens, len(res.tokens_per_layer)
    mean = sum(t - res.text_tokens for t in res.tokens_per_layer) / (L * n)
    # whole tokens: within one token per layer of the cost
    assert abs(mean - cost) <= 1.0 / n + 1e-9


def test_a_static_video_is_merged_before_layer_0(tiny_llava):
    res = tiny_llava.engine.run(_static_prep(tiny_llava), "framefusion", max_new_tokens=1)
    first = res.stages[0]
    assert first.layer is None and first.info["action"] == "merge" and first.info["merged"] > 0
    # merged tokens are the later frames' ones: every first-frame token survives layer 0
    tpf = tiny_llava.prep.layout.tokens_per_frame
    assert torch.isin(torch.arange(tpf), first.kept_ids).all()


def test_each_stage_keeps_a_subset_in_original_ids(tiny_any):
    res = tiny_any.engine.run(_static_prep(tiny_any), "framefusion", max_new_tokens=1)
    prev = torch.arange(res.visual_tokens)
    for rec in res.stages:
        ids = rec.kept_ids
        assert torch.all(ids[1:] > ids[:-1]) and torch.isin(ids, prev).all()
        prev = ids


def test_text_tokens_are_never_dropped(tiny_any):
    res = tiny_any.engine.run(_static_prep(tiny_any), "framefusion", max_new_tokens=1)
    L, n = tiny_any.prep.input_ids.shape[1], res.visual_tokens
    # a record at layer i (the pre-LLM one at 0) sets the tokens layer i and later run with
    kept_from = {r.layer or 0: r.kept for r in res.stages}
    expected, alive = [], n
    for i in range(len(res.tokens_per_layer)):
        alive = kept_from.get(i, alive)
        expected.append(L - n + alive)
    assert res.tokens_per_layer == expected


def test_framefusion_is_deterministic(tiny_any):
    prep = _static_prep(tiny_any)
    a = tiny_any.engine.run(prep, "framefusion", max_new_tokens=3)
    b = tiny_any.engine.run(prep, "framefusion", max_new_tokens=3)
    assert all(torch.equal(x.kept_ids, y.kept_ids) for x, y in zip(a.stages, b.stages)) and a.tokens == b.tokens


def test_prune_step_keeps_the_most_attended_tokens(tiny_llava):
    prep, ad = tiny_llava.prep, tiny_llava.adapter
    n = prep.layout.num_tokens
    # threshold 1: nothing merges at layer 0, so layer 1 prunes the unmerged tokens with layer 0's row
    res = tiny_llava.engine.run(prep, "framefusion:threshold=1.0", max_new_tokens=1)
    assert res.stages[0].info["merged"] == 0
    prune = res.stages[1]
    assert prune.layer == 1 and prune.info["action"] == "prune"
    st = unpruned_state(ad, prep, 1)
    scores = st.last_token_scores(0)
    dropped = torch.ones(n, dtype=torch.bool)
    dropped[prune.kept_ids] = False
    assert scores[prune.kept_ids].min() >= scores[dropped].max()


# ---------------------------------------------------------------- threshold calibration, per-layer weighting

def test_calibration_is_the_mean_of_per_video_median_predecessor_similarities():
    from pruning_core.methods.framefusion import calibrate_threshold, median_similarity
    # 3 frames of 1x2 tokens: frame 1 vs 0 gives cos 1 and 0, frame 2 vs 1 gives 1 and 1 → median 1
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    assert median_similarity(x, torch.arange(6), 2) == pytest.approx(1.0)
    # 2 frames: cos 0 and 1 → torch's lower median 0
    assert median_similarity(x[:4], torch.arange(4), 2) == pytest.approx(0.0)
    assert calibrate_threshold([0.2, 0.6]) == pytest.approx(0.4)
    with pytest.raises(ValueError):
        median_similarity(x[:2], torch.arange(2), 2)


def test_calibration_tool_prints_a_threshold_and_the_plan_step(capsys):
    import importlib.util
    import json
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("calib", Path(__file__).resolve().parents[1] / "tools" /
                                                  "calibrate_framefusion.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main(["--synthetic", "2", "--frames", "4", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["videos"]) == 2 and -1.0 <= out["threshold"] <= 1.0
    assert out["plan"] == f"framefusion:threshold={out['threshold']:.4f}"


def test_layer_weighting_leaves_the_first_merge_of_fresh_tokens_unchanged(tiny_llava):
    size = tiny_llava.engine.run(tiny_llava.prep, "framefusion:threshold=-1,retention=0.5", max_new_tokens=1)
    layer = tiny_llava.engine.run(tiny_llava.prep, "framefusion:threshold=-1,retention=0.5,weighting=layer",
                                  max_new_tokens=1)
    # layer 0 merges fresh tokens: identical; the weights only differ once merged tokens merge again
    assert torch.equal(size.stages[0].kept_ids, layer.stages[0].kept_ids)
