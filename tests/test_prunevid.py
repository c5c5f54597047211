"""PruneVid: temporal segments, static merging and clustering before the LLM; question-to-video
attention pruning after layer M with the KV cache of layers 0..M pruned alike."""
from __future__ import annotations

import pytest
import torch

from pruning_core.errors import PlanError
from pruning_core.layout import TokenLayout
from pruning_core.methods.prunevid import (cluster_counts, contiguous_runs, default_layer, frame_segments,
                                           group_budgets, prunevid_merge, question_video_scores)
from pruning_core.registry import build_stages, get_method, parse_plan
from pruning_core.tokens import budget
from reference import masked_logits

DEFAULTS = {"merge": True, "retention": None, "tau": 0.8, "segment_ratio": 0.25, "cluster_ratio": 0.5, "k": 7,
            "llm_prune": True, "layer": None, "alpha": 0.4, "prune_cache": True}


def test_registered_with_paper_defaults():
    assert get_method("prunevid").defaults() == DEFAULTS


def test_layer_m_scales_with_depth():
    assert default_layer(32) == 10 and default_layer(28) == 9 and default_layer(3) == 1


def test_both_stages_are_switchable(tiny_llava):
    info = tiny_llava.adapter.info
    assert [s.kind for s in build_stages(parse_plan("prunevid"), info)] == ["pre", "cache"]
    assert [s.kind for s in build_stages(parse_plan("prunevid:llm_prune=false"), info)] == ["pre"]
    assert [s.kind for s in build_stages(parse_plan("prunevid:merge=false"), info)] == ["cache"]
    with pytest.raises(PlanError, match="out of range"):
        build_stages(parse_plan("prunevid:layer=3"), info)                 # 4 layers: M ≤ 2


# ---------------------------------------------------------------- worked examples

def test_contiguous_runs_keeps_each_clusters_longest_run():
    """Cluster 0 keeps [0,1] (not [5]); cluster 1 keeps [2..4] (not [7,8]); cluster 2 has a single frame
    and is dissolved. Frames 5..8 then join their only neighbour with a run, cluster 1."""
    assert contiguous_runs([0, 0, 1, 1, 1, 0, 2, 1, 1]) == [0, 0, 1, 1, 1, 1, 1, 1, 1]
    assert contiguous_runs([0, 1, 0, 1]) == [0, 0, 0, 0]                   # all single: left wins, first 0
    assert contiguous_runs([2, 2, 3, 3]) == [2, 2, 3, 3]


def test_frames_of_two_scenes_form_two_segments():
    layout = TokenLayout(8, 2, 2)
    a, b = torch.randn(1, 4, 16), torch.randn(1, 4, 16)
    x = torch.cat([a.expand(4, 4, 16), b.expand(4, 4, 16)]) + 0.01 * torch.randn(8, 4, 16)
    seg = frame_segments(x.reshape(32, 16), torch.arange(32), layout, 0.25, 7)
    assert seg.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_cluster_counts_paper_and_exact_forms():
    sizes = torch.tensor([10, 15, 144])
    assert cluster_counts(sizes, 0.5, None).tolist() == [10, 7, 72]        # ≤ 14 tokens: not clustered
    c = cluster_counts(sizes, 0.5, 50)
    assert int(c.sum()) == 50 and torch.all(c <= sizes)


def test_static_positions_merge_and_the_rest_is_clustered():
    """4 identical frames over 2x2 except position 3, which changes: positions 0-2 are static (one
    token each, at frame 0), position 3 stays dynamic in all 4 frames; no group exceeds 14 tokens."""
    layout = TokenLayout(4, 2, 2)
    base = torch.randn(4, 8)
    x = base.repeat(4, 1)
    x[3::4] = torch.randn(4, 8) * 5
    p = dict(DEFAULTS)
    keep, how, groups, info = prunevid_merge(x, torch.arange(16), layout, p, None)
    values = how.apply(x, keep)
    assert keep.tolist() == [0, 1, 2, 3, 7, 11, 15]
    assert torch.allclose(values[:3], base[:3], atol=1e-6)
    assert info["merged_static"] == 9


def test_exact_budget_never_merges_below_it():
    layout = TokenLayout(4, 2, 2)
    x = torch.randn(4, 8).repeat(4, 1)                                    # everything static
    for k in (2, 5, 9, 13):
        keep, _, _, _ = prunevid_merge(x, torch.arange(16), layout, dict(DEFAULTS), k)
        assert keep.numel() == k and torch.all(keep[1:] > keep[:-1])


def test_question_video_scores_are_max_over_heads_and_questions():
    probs = torch.zeros(2, 3, 5)
    probs[0, 1, 1] = 0.7
    probs[1, 2, 3] = 0.4
    probs[1, 0, 4] = 0.9
    slot_vis = torch.tensor([-1, 0, 1, 2, -1])
    s = question_video_scores(probs, slot_vis, torch.tensor([0, 2]))
    assert s.tolist() == pytest.approx([0.7, 0.4])


def test_group_budgets_sum_to_alpha_of_the_tokens():
    g, k = group_budgets(torch.tensor([5, 5, 5, 5, 9, 9, 9, 9, 9, 9]), 0.4)
    assert int(k.sum()) == 4 and k.tolist() == [2, 2]


# ---------------------------------------------------------------- through the engine

def _layer(tiny) -> int:
    return default_layer(tiny.adapter.info.num_layers)


def test_engine_pre_stage_meets_the_budget_and_llm_stage_keeps_alpha(tiny_any):
    prep = tiny_any.prep
    n = prep.layout.num_tokens
    res = tiny_any.engine.run(prep, "prunevid:retention=0.3", max_new_tokens=3)
    pre, llm = res.stages
    assert pre.kept == budget(0.3, n) and llm.kept == round(0.4 * pre.kept)
    assert torch.isin(llm.kept_ids, pre.kept_ids).all() and torch.all(llm.kept_ids[1:] > llm.kept_ids[:-1])
    m = _layer(tiny_any)
    L = prep.input_ids.shape[1]
    tpl = res.tokens_per_layer
    assert tpl[: m + 1] == [L - n + pre.kept] * (m + 1) and set(tpl[m + 1:]) == {L - n + llm.kept}


def test_engine_kv_cache_of_every_layer_holds_only_the_kept_tokens(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "prunevid:retention=0.3", max_new_tokens=1)
    L, n = tiny_any.prep.input_ids.shape[1], tiny_any.prep.layout.num_tokens
    full = tiny_any.engine.run(tiny_any.prep, "none", max_new_tokens=1)
    layers = tiny_any.adapter.info.num_layers
    per_entry = full.kv_cache_bytes / (L * layers)
    assert res.kv_cache_bytes == pytest.approx(per_entry * (L - n + res.kept_tokens) * layers)


def test_engine_prune_cache_off_keeps_early_layers_whole(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "prunevid:merge=false,prune_cache=false", max_new_tokens=1)
    L, n = tiny_any.prep.input_ids.shape[1], tiny_any.prep.layout.num_tokens
    full = tiny_any.engine.run(tiny_any.prep, "none", max_new_tokens=1)
    layers, m = tiny_any.adapter.info.num_layers, _layer(tiny_any)
    per_entry = full.kv_cache_bytes / (L * layers)
    entries = L * (m + 1) + (L - n + res.kept_tokens) * (layers - m - 1)
    assert res.kv_cache_bytes == pytest.approx(per_entry * entries)


def _reference(adapter, prep, tokens, m, dropped_rows):
    """No-cache forward of prompt + generated tokens with masks: prompt rows see everything up to
    layer M and not the dropped rows after it; generated tokens never see the dropped rows."""
    L = prep.input_ids.shape[1]

    def mask(i, causal):
        out = causal.clone()
        if i <= m:
            out[L:, dropped_rows] = False
        else:
            out[:, dropped_rows] = False
            out[dropped_rows, dropped_rows] = True       # a dropped row's own output is never read
        return out
    return masked_logits(adapter, prep, tokens, mask)


def test_engine_decode_equals_a_masked_recompute(tiny_any):
    """Prefill sees every token up to layer M; the dropped tokens leave all later layers AND every
    layer's cache, so generated tokens never see them (PruneVid's consistent KV cache)."""
    prep = tiny_any.prep
    res = tiny_any.engine.run(prep, "prunevid:merge=false", max_new_tokens=4, collect_logits=True)
    n = prep.layout.num_tokens
    dropped = torch.ones(n, dtype=torch.bool)
    dropped[res.stages[-1].kept_ids] = False
    ref = _reference(tiny_any.adapter, prep, res.tokens, _layer(tiny_any), prep.vis_pos[dropped.to(prep.vis_pos.device)])
    torch.testing.assert_close(res.logits, ref, atol=1e-4, rtol=1e-4)


def test_engine_run_is_deterministic(tiny_any):
    a = tiny_any.engine.run(tiny_any.prep, "prunevid", max_new_tokens=3)
    b = tiny_any.engine.run(tiny_any.prep, "prunevid", max_new_tokens=3)
    assert all(torch.equal(x.kept_ids, y.kept_ids) for x, y in zip(a.stages, b.stages)) and a.tokens == b.tokens
