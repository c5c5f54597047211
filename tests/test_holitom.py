"""HoliTom: global temporal segmentation by DP, spatio-temporal merging, inner-LLM merging; and the
HoliTom + ShaRP chain of ShaRP Table 3."""
from __future__ import annotations

import itertools

import pytest
import torch

from pruning_core.layout import TokenLayout
from pruning_core.methods.holitom import (best_windows, default_inner_layer, inner_merge, outer_merge,
                                          sequential_average_weights, window_savings)
from pruning_core.registry import build_stages, get_method, parse_plan
from pruning_core.tokens import budget, cosine_matrix

OUTER = {"retention": 0.15, "tau": 0.8, "temporal": True, "max_window": 1024, "beta": 0.6, "d": 0.0, "k": 7}


def test_registered_with_paper_defaults():
    d = get_method("holitom").defaults()
    assert {k: d[k] for k in OUTER} == OUTER
    assert d["inner"] and d["inner_layer"] is None and d["inner_ratio"] == 0.5
    assert default_inner_layer(28) == 18 and default_inner_layer(24) == 15 and default_inner_layer(3) == 2


def test_inner_stage_switchable_and_replaced_by_a_later_in_llm_method(tiny_llava):
    info = tiny_llava.adapter.info
    assert [s.kind for s in build_stages(parse_plan("holitom"), info)] == ["pre", "layer"]
    assert [s.kind for s in build_stages(parse_plan("holitom:inner=false"), info)] == ["pre"]
    chain = build_stages(parse_plan("holitom:retention=0.3+sharp:retention=0.15"), info)
    assert [s.method for s in chain] == ["holitom", "sharp"]          # ShaRP Table 3: inner stage replaced


# ---------------------------------------------------------------- worked examples

def test_worked_example_window_savings():
    """3 frames, 2 positions. Steps: position 0 similar in both steps, position 1 only in the first.
    [0,1] saves 1·2 = 2, [1,2] saves 1·1 = 1, [0,2] saves 2·1 = 2 (only position 0 is static)."""
    sim = torch.tensor([[0.9, 0.95], [0.85, 0.1]])
    s = window_savings(sim, 0.8)
    assert s[0, 1] == 2 and s[1, 2] == 1 and s[0, 2] == 2 and s[0, 0] == 0 and s[2, 2] == 0


def _brute_force(savings: torch.Tensor, max_window: int) -> int:
    n = savings.shape[0]
    best = 0
    for cuts in itertools.product([0, 1], repeat=n - 1):
        bounds, start = [], 0
        for i, c in enumerate(cuts):
            if c:
                bounds.append((start, i))
                start = i + 1
        bounds.append((start, n - 1))
        if all(b - a + 1 <= max_window for a, b in bounds):
            best = max(best, sum(int(savings[a, b]) for a, b in bounds))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_dp_finds_the_best_partition(seed):
    g = torch.Generator().manual_seed(seed)
    sim = torch.rand(7, 5, generator=g) * 0.4 + 0.6                  # 8 frames
    sav = window_savings(sim, 0.8)
    for w in (2, 3, 8):
        windows, total = best_windows(sav, w)
        assert total == _brute_force(sav, w) == sum(int(sav[a, b]) for a, b in windows)
        assert windows[0][0] == 0 and windows[-1][1] == 7
        assert all(b2 == a1 - 1 for (_, b2), (a1, _) in zip(windows, windows[1:]))


def test_sequential_average_closed_form_equals_the_loop():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(7, 3, generator=g, dtype=torch.float64)
    target = torch.tensor([1, 0, 1, 1])                              # merged tokens 3..6 into kept 0/1
    w_src, w_tgt = sequential_average_weights(target, 2)
    ref = h[:2].clone()
    for j, t in enumerate(target.tolist()):
        ref[t] = (ref[t] + h[3 + j]) / 2
    mine = torch.stack([w_tgt[t] * h[t] + sum(w_src[j] * h[3 + j] for j in range(4) if target[j] == t)
                        for t in range(2)])
    assert torch.allclose(mine, ref)


def test_inner_merge_keeps_top_scores_and_folds_the_rest_into_their_nearest():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(10, 4, generator=g)
    scores = torch.rand(10, generator=g)
    keep, how = inner_merge(h, scores, 5)
    values = how.apply(h.double(), keep)
    assert keep.tolist() == sorted(torch.topk(scores, 5).indices.tolist())
    drop = [i for i in range(10) if i not in keep.tolist()]
    to = cosine_matrix(h[drop], h[keep]).argmax(1)
    ref = h[keep].clone().double()
    for j, t in zip(drop, to.tolist()):
        ref[t] = (ref[t] + h[j].double()) / 2
    assert torch.allclose(values.double(), ref, atol=1e-6)


def _static_video():
    """6 frames over a 2x2 grid: frames 0-2 identical, frames 3-5 identical, with position 3 changing
    every frame; the vision attention favours position 0."""
    layout = TokenLayout(6, 2, 2)
    a, b = torch.randn(4, 8), torch.randn(4, 8)
    x = torch.cat([a, a, a, b, b, b])
    x[3::4] = torch.randn(6, 8) * 3
    att = torch.tensor([0.5, 0.1, 0.2, 0.3]).repeat(6)
    return layout, x, att


def test_outer_merge_finds_the_two_scenes_and_merges_their_static_tokens():
    layout, x, att = _static_video()
    keep, how, info = outer_merge(x, torch.arange(24), layout, att, 12, dict(OUTER))
    assert info["windows"] == [[0, 2], [3, 5]]
    assert info["static_saving"] == 12 and info["merged_static"] == 12
    # static positions 0-2 of each window live on at the window's first frame
    assert keep.tolist() == [0, 1, 2, 3, 7, 11, 12, 13, 14, 15, 19, 23]


@pytest.mark.parametrize("k", [12, 9, 6, 3, 1])
def test_outer_merge_meets_any_budget_exactly(k):
    layout, x, att = _static_video()
    keep, how, info = outer_merge(x, torch.arange(24), layout, att, k, dict(OUTER))
    assert keep.numel() == k and how.apply(x, keep).shape == (k, 8) and torch.all(keep[1:] > keep[:-1])


def test_dynamic_tokens_keep_the_most_attended():
    layout = TokenLayout(3, 2, 2)
    x = torch.randn(12, 8) * 3                                       # nothing static
    att = torch.tensor([0.1, 0.9, 0.3, 0.2, 0.8, 0.1, 0.2, 0.3, 0.2, 0.2, 0.1, 0.7])
    keep, how, info = outer_merge(x, torch.arange(12), layout, att, 3, dict(OUTER))
    assert keep.tolist() == [1, 4, 11] and torch.allclose(how.apply(x, keep), x[[1, 4, 11]])


# ---------------------------------------------------------------- through the engine

@pytest.mark.parametrize("plan", ["holitom:retention=0.25", "holitom:retention=0.25,d=0.5,tau=0.0"])
def test_engine_outer_meets_the_budget_and_inner_halves_it(tiny_any, plan):
    prep = tiny_any.prep
    n, L = prep.layout.num_tokens, prep.input_ids.shape[1]
    res = tiny_any.engine.run(prep, plan, max_new_tokens=3)
    outer, inner = res.stages
    k = budget(0.25, n)
    assert outer.kept == k and inner.kept == round(k * 0.5)
    assert inner.layer == default_inner_layer(tiny_any.adapter.info.num_layers)
    assert torch.isin(inner.kept_ids, outer.kept_ids).all()
    for rec in res.stages:
        assert torch.all(rec.kept_ids[1:] > rec.kept_ids[:-1]) and int(rec.kept_ids.max()) < n
    assert res.tokens_per_layer[0] == L - n + k                      # text never dropped


def test_engine_holitom_plus_sharp_is_shaRP_after_the_outer_stage(tiny_any):
    """ShaRP Table 3: HoliTom's outer-LLM merging, then ShaRP instead of HoliTom's inner stage."""
    prep = tiny_any.prep
    n = prep.layout.num_tokens
    res = tiny_any.engine.run(prep, "holitom:inner=false,retention=0.3+sharp:retention=0.15", max_new_tokens=2)
    same = tiny_any.engine.run(prep, "holitom:retention=0.3+sharp:retention=0.15", max_new_tokens=2)
    assert [r.name for r in res.stages][0] == "holitom" and res.stages[-1].name == "sharp"
    assert res.stages[0].kept == budget(0.3, n) and res.kept_tokens == budget(0.15, n)
    assert torch.equal(res.stages[-1].kept_ids, same.stages[-1].kept_ids) and res.tokens == same.tokens


def test_engine_run_is_deterministic(tiny_any):
    a = tiny_any.engine.run(tiny_any.prep, "holitom", max_new_tokens=3)
    b = tiny_any.engine.run(tiny_any.prep, "holitom", max_new_tokens=3)
    assert all(torch.equal(x.kept_ids, y.kept_ids) for x, y in zip(a.stages, b.stages)) and a.tokens == b.tokens


@pytest.mark.parametrize("plan", ["holitom:retention=0.3", "prunevid:retention=0.3", "prumerge_plus",
                                  "downsample:retention=0.25"])
def test_every_stage_of_the_new_baselines_draws_on_the_frames(tiny_llava, plan):
    """Layout kept for overlays: each stage's kept ids are original ids, drawable frame by frame."""
    from pruning_core.overlay import overlay_frames, pixel_mask
    res = tiny_llava.engine.run(tiny_llava.prep, plan, max_new_tokens=1)
    frames, layout = tiny_llava.frames, tiny_llava.prep.layout
    h, w = frames.shape[1:3]
    prev = None
    for rec in res.stages:
        m = pixel_mask(layout, rec.kept_ids, h, w)
        assert int(m.sum()) > 0 and (prev is None or not (m & ~prev).any())
        assert overlay_frames(frames, layout, rec.kept_ids, outline=False, show_retention=False).shape == frames.shape
        prev = m
