"""PruMerge / PruMerge+: IQR outliers of the vision attention, kNN merging, spatial supplement."""
from __future__ import annotations

import pytest
import torch

from pruning_core.layout import TokenLayout
from pruning_core.methods.prumerge import (frame_normalised, iqr_outliers, knn_merge, prumerge_select,
                                           spatial_supplement, uniform_fill)
from pruning_core.registry import get_method, parse_plan
from pruning_core.temporal import dense_index
from pruning_core.tokens import budget
from pruning_core.vision_attention import token_attention


def test_registered_with_paper_defaults():
    d = get_method("prumerge").defaults()
    assert d == {"retention": None, "merge": True, "neighbours": 32}
    assert get_method("prumerge_plus").kind == "pre"
    assert parse_plan("prumerge:retention=0.15")[0]["retention"] == 0.15


def test_worked_example_iqr_fence():
    """a = 1..8 and 40: Q1 = 3, Q3 = 7 (linear, as np.percentile), fence 7 + 1.5·4 = 13: only 40 is out."""
    att = torch.tensor([1.0, 2, 3, 4, 5, 6, 7, 8, 40])
    layout = TokenLayout(1, 3, 3)
    out = iqr_outliers(att, dense_index(torch.arange(9), layout))
    assert out.nonzero().squeeze(1).tolist() == [8]


def test_iqr_is_per_frame():
    att = torch.tensor([1.0, 1, 1, 9, 100, 100, 100, 900])
    out = iqr_outliers(att, dense_index(torch.arange(8), TokenLayout(2, 2, 2)))
    assert out.nonzero().squeeze(1).tolist() == [3, 7]


def test_attention_is_renormalised_per_frame():
    a = frame_normalised(torch.tensor([1.0, 3.0, 2.0, 2.0]), torch.tensor([0, 0, 1, 1]), 2)
    assert a.tolist() == [0.25, 0.75, 0.5, 0.5]


def test_worked_example_knn_merge_adds_attention_weighted_neighbours():
    """One frame of 4 tokens, k = 2: token 0's keys are nearest to tokens 1 and 2, so
    y_0 = x_0 + a_1·x_1 + a_2·x_2 (PruMerge Alg. 1, no normalisation of the weights)."""
    layout = TokenLayout(1, 2, 2)
    x = torch.tensor([[1.0, 0], [0, 1], [2, 2], [5, 5]])
    keys = torch.tensor([[1.0, 0], [0.9, 0.1], [0.8, 0.2], [-1, 0]])
    att = torch.tensor([0.4, 0.3, 0.2, 0.1])
    y = knn_merge(x, keys, att, torch.tensor([0]), dense_index(torch.arange(4), layout), k=2)
    assert torch.allclose(y[0], x[0] + 0.3 * x[1] + 0.2 * x[2])


def test_spatial_supplement_stride_follows_the_outlier_share():
    # 2 outliers of 36 → ⌊1/ρ⌋ = 18, stride ⌊18/3⌋ = 6: positions 0, 6, 12, ...
    pos = torch.arange(36)
    sup = spatial_supplement(torch.zeros(36, dtype=torch.long), pos, torch.tensor([2]), 36)
    assert sup.nonzero().squeeze(1).tolist() == [0, 6, 12, 18, 24, 30]


def test_uniform_fill_spreads_over_the_free_tokens_of_each_frame():
    free = torch.tensor([True] * 8 + [False, True, True, True])
    frame = torch.tensor([0] * 8 + [1] * 4)
    out = uniform_fill(free, frame, torch.tensor([2, 3]))
    assert out.nonzero().squeeze(1).tolist() == [2, 6, 9, 10, 11]


def _random(frames=3, side=4, d=6, seed=0):
    layout = TokenLayout(frames, side, side)
    g = torch.Generator().manual_seed(seed)
    n = layout.num_tokens
    return layout, torch.randn(n, d, generator=g), torch.rand(n, generator=g) ** 4, torch.randn(n, 5, generator=g)


@pytest.mark.parametrize("plus", [False, True])
@pytest.mark.parametrize("retention", [0.5, 0.2, 0.05])
def test_retention_mode_keeps_exactly_the_budget_an_equal_share_per_frame(plus, retention):
    layout, x, att, keys = _random()
    keep, values, info = prumerge_select(x, torch.arange(layout.num_tokens), layout, att, keys, retention,
                                         layout.num_tokens, plus, True, 32)
    k = budget(retention, layout.num_tokens)
    assert keep.numel() == k and values.shape == (k, 6)
    assert torch.all(keep[1:] > keep[:-1])
    per = layout.kept_per_frame(keep)
    assert int(per.max() - per.min()) <= 1


def test_adaptive_mode_keeps_the_outliers_and_one_token_for_a_frame_without_any():
    layout = TokenLayout(2, 3, 3)
    att = torch.ones(18)
    att[4] = 50.0                                                   # frame 0: one outlier; frame 1: none
    x = torch.randn(18, 3)
    keep, _, info = prumerge_select(x, torch.arange(18), layout, att, torch.randn(18, 4), None, 18, False, True, 4)
    assert keep.tolist() == [4, 9] and info["outliers_per_frame"] == [1, 0]


def test_plus_adds_evenly_spaced_tokens_to_the_outliers():
    layout = TokenLayout(1, 6, 6)
    att = torch.ones(36)
    att[[7, 20]] = 50.0
    keep, _, _ = prumerge_select(torch.randn(36, 3), torch.arange(36), layout, att, torch.randn(36, 4), None, 36,
                                 True, False, 4)
    assert keep.tolist() == [0, 6, 7, 12, 18, 20, 24, 30]


def test_merge_off_keeps_the_embeddings():
    layout, x, att, keys = _random()
    keep, values, _ = prumerge_select(x, torch.arange(layout.num_tokens), layout, att, keys, 0.25,
                                      layout.num_tokens, False, False, 32)
    assert values is None


# ---------------------------------------------------------------- through the engine

@pytest.mark.parametrize("method", ["prumerge", "prumerge_plus"])
def test_engine_keeps_the_budget_with_original_ascending_ids(tiny_any, method):
    res = tiny_any.engine.run(tiny_any.prep, f"{method}:retention=0.25", max_new_tokens=2)
    n = tiny_any.prep.layout.num_tokens
    ids = res.stages[0].kept_ids
    assert res.kept_tokens == budget(0.25, n) == ids.numel()
    assert torch.all(ids[1:] > ids[:-1]) and int(ids.max()) < n
    L = tiny_any.prep.input_ids.shape[1]
    assert all(t == L - n + res.kept_tokens for t in res.tokens_per_layer)     # text never dropped


def test_engine_keeps_the_most_attended_tokens_of_every_frame(tiny_any):
    prep = tiny_any.prep
    att, _ = token_attention(prep.encoding.vision)
    res = tiny_any.engine.run(prep, "prumerge:retention=0.25", max_new_tokens=1)
    ids, layout = res.stages[0].kept_ids, prep.layout
    for f in range(layout.num_frames):
        sl = slice(f * layout.tokens_per_frame, (f + 1) * layout.tokens_per_frame)
        fa = att[sl]
        kept = ids[layout.frame_of(ids) == f] - f * layout.tokens_per_frame
        dropped = torch.ones(layout.tokens_per_frame, dtype=torch.bool)
        dropped[kept] = False
        assert fa[kept].min() >= fa[dropped].max()


def test_engine_adaptive_run_is_deterministic(tiny_any):
    a = tiny_any.engine.run(tiny_any.prep, "prumerge_plus", max_new_tokens=3)
    b = tiny_any.engine.run(tiny_any.prep, "prumerge_plus", max_new_tokens=3)
    assert torch.equal(a.stages[0].kept_ids, b.stages[0].kept_ids) and a.tokens == b.tokens
