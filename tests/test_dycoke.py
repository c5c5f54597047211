"""DyCoke: temporal token merging over windows of 4 frames, and decode-time visual KV pruning."""
from __future__ import annotations

import pytest
import torch

from reference import masked_logits, unpruned_state

from pruning_core.errors import PlanError
from pruning_core.layout import TokenLayout
from pruning_core.methods.dycoke import (DyCokeTTMStage, cache_entries_to_keep, kv_keep_visual_ids,
                                         ttm_reference_frame, ttm_select, ttm_similarity)
from pruning_core.registry import build_stages, parse_plan
from pruning_core.stages import PreContext
from pruning_core.tokens import rowwise_cosine


# ---------------------------------------------------------------- TTM on hand-made tensors

def test_reference_frames_inside_windows_of_four():
    assert ttm_reference_frame(torch.arange(10)).tolist() == [-1, 0, 0, 2, -1, 4, 4, 6, -1, 8]


def test_official_window_skips_frame_2_of_windows_its_loop_does_not_visit():
    # range(0, F-4, 4) with F = 10 visits windows 0 and 4; window 8's frame 2 would be frame 10
    assert ttm_reference_frame(torch.arange(10), 10).tolist() == [-1, 0, 0, 2, -1, 4, 4, 6, -1, 8]
    # F = 8: only window 0 is visited, so frame 6 stays whole
    assert ttm_reference_frame(torch.arange(8), 8).tolist() == [-1, 0, 0, 2, -1, 4, -1, 6]


def test_official_window_keeps_3098_of_32x196_tokens_at_k_07():
    layout = TokenLayout(32, 14, 14)
    emb = torch.randn(32 * 196, 4, generator=torch.Generator().manual_seed(9))
    ids = torch.arange(32 * 196)
    assert ttm_select(emb, ids, layout, 0.7, official_window=True)[0].numel() == 3098
    assert ttm_select(emb, ids, layout, 0.7, official_window=False)[0].numel() == 2960


def _unit(*angles_deg):
    r = torch.tensor(angles_deg, dtype=torch.float64).deg2rad()
    return torch.stack([r.cos(), r.sin()], 1).float()


def test_worked_example_merges_exactly_the_tokens_above_each_frames_cut():
    """4 frames of 2x2 tokens, K = 0.5: every compared frame keeps int(0.5·4) = 2 tokens — the two
    least similar to the same grid position in its reference (1→0, 2→0, 3→2)."""
    f0 = _unit(0, 90, 180, 270)
    f1 = _unit(1, 150, 182, 330)          # positions 0, 2 barely moved → merged into frame 0
    f2 = _unit(3, 92, 260, 0)             # positions 0, 1 barely moved → merged
    f3 = _unit(80, 100, 262, 1)           # vs frame 2: positions 2, 3 barely moved → merged
    layout = TokenLayout(4, 2, 2)
    keep, info = ttm_select(torch.cat([f0, f1, f2, f3]), torch.arange(16), layout, 0.5)
    assert keep.tolist() == [0, 1, 2, 3, 5, 7, 10, 11, 12, 13]
    assert info["merged_per_frame"] == [0, 2, 2, 2]


def test_similarity_compares_same_grid_position_with_the_reference_frame():
    layout = TokenLayout(4, 1, 2)
    emb = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
    sim = ttm_similarity(emb, torch.arange(8), layout)
    ref = torch.tensor([-1, -1, 0, 1, 0, 1, 4, 5])
    expected = rowwise_cosine(emb, emb[ref.clamp_min(0)]).masked_fill(ref < 0, float("-inf"))
    assert torch.equal(sim, expected)


def test_keeps_int_of_one_minus_k_per_compared_frame():
    layout = TokenLayout(8, 4, 4)                                  # two windows of four 16-token frames
    emb = torch.randn(128, 8, generator=torch.Generator().manual_seed(1))
    keep, _ = ttm_select(emb, torch.arange(128), layout, 0.7)
    per_frame = layout.kept_per_frame(keep).tolist()
    assert per_frame == [16, 4, 4, 4, 16, 4, 4, 4]                # int(0.3·16) = 4


def test_merged_tokens_are_the_most_similar_of_their_frame():
    layout = TokenLayout(4, 4, 4)
    emb = torch.randn(64, 8, generator=torch.Generator().manual_seed(2))
    sim = ttm_similarity(emb, torch.arange(64), layout)
    keep, _ = ttm_select(emb, torch.arange(64), layout, 0.7)
    merged = torch.ones(64, dtype=torch.bool)
    merged[keep] = False
    for f in (1, 2, 3):
        in_f = layout.frame_of(torch.arange(64)) == f
        assert sim[merged & in_f].min() >= sim[~merged & in_f].max()


def test_window_anchors_and_a_trailing_anchor_frame_stay_whole():
    layout = TokenLayout(5, 2, 2)                                  # frame 4 opens a second window alone
    emb = torch.randn(20, 4, generator=torch.Generator().manual_seed(3))
    keep, _ = ttm_select(emb, torch.arange(20), layout, 0.5)
    assert layout.kept_per_frame(keep).tolist() == [4, 2, 2, 2, 4]


def test_k_zero_keeps_everything():
    layout = TokenLayout(4, 2, 2)
    keep, _ = ttm_select(torch.randn(16, 3), torch.arange(16), layout, 0.0)
    assert keep.tolist() == list(range(16))


def test_after_an_earlier_stage_tokens_without_a_reference_stay():
    layout = TokenLayout(2, 1, 4)
    ids = torch.tensor([0, 1, 4, 5, 6, 7])                         # frame 0 lost positions 2 and 3
    emb = torch.ones(6, 3)                                         # everything identical
    keep, _ = ttm_select(emb, ids, layout, 0.5)                    # frame 1: 4 alive, int(0.5·4)=2 stay
    assert ids[keep].tolist() == [0, 1, 6, 7]


def test_ttm_stage_is_deterministic_and_ascending():
    layout = TokenLayout(4, 3, 3)
    emb = torch.randn(36, 6, generator=torch.Generator().manual_seed(4))
    ctx = PreContext(emb, torch.arange(36), layout, torch.zeros(6), torch.zeros(1, 6))
    st = DyCokeTTMStage("dycoke", {"k": 0.7})
    a, b = st.select(ctx), st.select(ctx)
    assert torch.equal(a.keep, b.keep) and torch.all(a.keep[1:] > a.keep[:-1])


# ---------------------------------------------------------------- KV pruning on hand-made tensors

def test_kv_keeps_the_most_attended_visual_entries():
    visual_ids = torch.tensor([-1, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, -1])
    scores = torch.tensor([0.5, 0.1, 0.01, 0.2, 0.03, 0.05, 0.3, 0.02, 0.04, 0.06, 0.07, 0.08, 0.2])
    kept = kv_keep_visual_ids(scores, visual_ids, 0.7)             # int(0.3·10) = 3
    assert kept.tolist() == [1, 4, 9]


def test_cache_entries_keep_text_and_kept_visual_only():
    visual_ids = torch.tensor([-1, 0, 1, 2, 3, -1, -1])
    assert cache_entries_to_keep(visual_ids, torch.tensor([1, 3])).tolist() == [0, 2, 4, 5, 6]


class _Info:
    num_layers = 4


def test_plan_validation():
    (kv,) = build_stages(parse_plan("dycoke:ttm=false,layer=4"), _Info())
    assert kv.layer == 3                                          # L clamped to the model's depth
    with pytest.raises(PlanError, match="decode"):
        parse_plan("dycoke:decode=sometimes")
    kinds = [s.kind for s in build_stages(parse_plan("dycoke"), _Info())]
    assert kinds == ["pre", "cache"]
    assert build_stages(parse_plan("dycoke:ttm=false,kv_prune=false"), _Info()) == []


# ---------------------------------------------------------------- through the engine, both backbones

def test_engine_ttm_keeps_the_expected_count_with_original_ids(tiny_any):
    prep = tiny_any.prep
    res = tiny_any.engine.run(prep, "dycoke:kv_prune=false,window=all", max_new_tokens=1)
    layout = prep.layout
    expect = sum(layout.tokens_per_frame if f % 4 == 0 else int(0.3 * layout.tokens_per_frame)
                 for f in range(layout.num_frames))
    ids = res.stages[0].kept_ids
    assert res.kept_tokens == expect == ids.numel()
    assert torch.all(ids[1:] > ids[:-1]) and int(ids.max()) < layout.num_tokens
    L, n = prep.input_ids.shape[1], layout.num_tokens
    assert all(t == L - n + expect for t in res.tokens_per_layer)  # text rows all stay


def _masked_recompute(adapter, prep, tokens, layer, pruned_rows):
    """No-cache forward of prompt + generated tokens: every prompt row sees everything (the prefill
    is unpruned); generated tokens at layers >= ``layer`` cannot see ``pruned_rows``."""
    L = prep.input_ids.shape[1]

    def mask(i, causal):
        if i < layer:
            return causal
        late = causal.clone()
        late[L:, pruned_rows] = False
        return late
    return masked_logits(adapter, prep, tokens, mask)


def test_engine_kv_pruning_decode_equals_a_masked_recompute(tiny_any):
    eng, prep = tiny_any.engine, tiny_any.prep
    res = eng.run(prep, "dycoke:ttm=false,layer=2,p=0.7,decode=evict", max_new_tokens=5, collect_logits=True)
    info = res.stages[-1].info
    kept = res.stages[-1].kept_ids
    n = prep.layout.num_tokens
    assert info["kv_kept"] == int(0.3 * n) == kept.numel()
    pruned = torch.ones(n, dtype=torch.bool)
    pruned[kept] = False
    ref = _masked_recompute(tiny_any.adapter, prep, res.tokens, 2, prep.vis_pos[pruned.to(prep.vis_pos.device)])
    torch.testing.assert_close(res.logits, ref, atol=1e-4, rtol=1e-4)


def test_engine_kv_pruning_really_shrinks_the_cache(tiny_any):
    eng, prep = tiny_any.engine, tiny_any.prep
    full = eng.run(prep, "none", max_new_tokens=1)
    res = eng.run(prep, "dycoke:ttm=false,layer=3,p=0.7,decode=evict", max_new_tokens=1)
    L, n, layers = prep.input_ids.shape[1], prep.layout.num_tokens, tiny_any.adapter.info.num_layers
    per_entry = full.kv_cache_bytes / (L * layers)
    entries = L * 3 + (L - n + int(0.3 * n)) * (layers - 3)
    assert res.kv_cache_bytes == pytest.approx(per_entry * entries)


def test_engine_kv_pruning_uses_attention_of_the_layer_before(tiny_llava):
    prep, ad = tiny_llava.prep, tiny_llava.adapter
    n = prep.layout.num_tokens
    st = unpruned_state(ad, prep, 3)
    scores = st.last_token_scores(2)
    res = tiny_llava.engine.run(prep, "dycoke:ttm=false,layer=3,decode=evict", max_new_tokens=1)
    kept = res.stages[-1].kept_ids
    dropped = torch.ones(n, dtype=torch.bool)
    dropped[kept] = False
    assert scores[kept].min() >= scores[dropped].max()


def test_engine_full_dycoke_prunes_the_cache_among_ttm_survivors(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "dycoke:decode=evict", max_new_tokens=3)
    ttm_ids = res.stages[0].kept_ids
    kept = res.stages[1].kept_ids
    assert bool(torch.isin(kept, ttm_ids).all()) and kept.numel() == int(0.3 * ttm_ids.numel())
    again = tiny_any.engine.run(tiny_any.prep, "dycoke:decode=evict", max_new_tokens=3)
    assert again.tokens == res.tokens and torch.equal(again.stages[1].kept_ids, kept)


# ---------------------------------------------------------------- official decode: a per-step mask

def test_official_decode_evicts_nothing(tiny_any):
    eng, prep = tiny_any.engine, tiny_any.prep
    full = eng.run(prep, "none", max_new_tokens=4)
    res = eng.run(prep, "dycoke:ttm=false,layer=2", max_new_tokens=4)
    assert res.kv_cache_bytes == full.kv_cache_bytes and res.kv_cache_bytes_final == full.kv_cache_bytes_final
    steps = res.stages[-1].info["steps"]
    assert [s[0] for s in steps] == list(range(res.decode_steps))
    assert steps[0][2] is True                                    # nothing to compare with: the first step prunes


def test_official_decode_never_prunes_above_threshold_and_equals_unpruned(tiny_any):
    eng, prep = tiny_any.engine, tiny_any.prep
    full = eng.run(prep, "none", max_new_tokens=4, collect_logits=True)
    res = eng.run(prep, "dycoke:ttm=false,layer=2,threshold=-1", max_new_tokens=4, collect_logits=True)
    assert not any(s[2] for s in res.stages[-1].info["steps"])
    torch.testing.assert_close(res.logits, full.logits, atol=1e-5, rtol=1e-5)


def test_official_decode_step_equals_a_recompute_masked_by_that_steps_ranking(tiny_any, monkeypatch):
    from pruning_core.methods import dycoke
    eng, prep = tiny_any.engine, tiny_any.prep
    chosen = []
    orig = dycoke.DyCokeKVStage.decode_layer_keep

    def spy(self, cache, layer, step):
        out = orig(self, cache, layer, step)
        if layer == self.layer:
            chosen.append(self._keep_ids.clone())
        return out
    monkeypatch.setattr(dycoke.DyCokeKVStage, "decode_layer_keep", spy)
    res = eng.run(prep, "dycoke:ttm=false,layer=2,p=0.7", max_new_tokens=2, collect_logits=True)
    (kept,) = chosen                                                # one decode step, pruned (first step)
    n = prep.layout.num_tokens
    assert kept.numel() == int(0.3 * n)
    pruned = torch.ones(n, dtype=torch.bool)
    pruned[kept] = False
    ref = _masked_recompute(tiny_any.adapter, prep, res.tokens, 2, prep.vis_pos[pruned.to(prep.vis_pos.device)])
    torch.testing.assert_close(res.logits, ref, atol=1e-4, rtol=1e-4)
    # the ranking is the first generated token's, not the last prompt token's (evict mode's)
    evict = eng.run(prep, "dycoke:ttm=false,layer=2,p=0.7,decode=evict", max_new_tokens=1)
    assert not torch.equal(evict.stages[-1].kept_ids, kept.cpu())
