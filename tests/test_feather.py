"""Feather: RoPE-free last-token scores at layer K-1, a per-frame stride lattice plus the top-scored
tokens, exactly the budget in total."""
from __future__ import annotations

import pytest
import torch

from reference import unpruned_state

from pruning_core.layout import TokenLayout
from pruning_core.attention import apply_rope, layer_keys, layer_query, remove_rope, row_attention
from pruning_core.methods.feather import derope_scores, fitting_stride, lattice_mask, uniform_plus_top
from pruning_core.stages import LayerContext
from pruning_core.tokens import budget


# ---------------------------------------------------------------- RoPE removal

def test_remove_rope_inverts_apply_rope_also_with_attention_scaling():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 8, generator=g)
    theta = torch.rand(5, 4, generator=g) * 6.0
    ang = torch.cat([theta, theta], -1)                 # the half-split layout duplicates the angles
    for scale in (1.0, 1.3):
        cos, sin = scale * ang.cos(), scale * ang.sin()
        torch.testing.assert_close(remove_rope(apply_rope(x, cos, sin), cos, sin), x, atol=1e-5, rtol=1e-5)


def test_rope_changes_the_scores_that_removing_it_restores():
    """Worked example: one query, two identical keys at different positions. Without RoPE they
    score the same; with RoPE the position makes them differ (the bias Feather removes)."""
    q = torch.tensor([[1.0, 0.0, 1.0, 0.0]])                 # [H=1, hd=4]
    k = torch.tensor([[[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0]]])   # [KVH=1, n=2, hd]
    ang = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 0.1, 1.0, 0.1]])
    plain = row_attention(q, k, 0.5)
    rotated = row_attention(q, apply_rope(k, ang.cos(), ang.sin()), 0.5)
    restored = row_attention(q, remove_rope(apply_rope(k, ang.cos(), ang.sin()), ang.cos(), ang.sin()), 0.5)
    assert torch.allclose(plain, torch.tensor([[0.5, 0.5]]))
    assert not torch.allclose(rotated, plain)
    torch.testing.assert_close(restored, plain)


@pytest.mark.parametrize("fixture", ["tiny_llava", "tiny_qwen2vl"])
def test_derope_scores_equal_attention_recomputed_from_projections_without_rope(request, fixture):
    """Un-rotating layer K-1's cached keys == projecting layer K-1's input with k_proj and no RoPE."""
    s = request.getfixturevalue(fixture)
    ad, prep = s.adapter, s.prep
    st = unpruned_state(ad, prep)
    with torch.no_grad():
        st.run_layer(0, None)
        h1 = st.hidden[0].clone()                           # input of layer 1
        st.run_layer(1, None)
        ours = derope_scores(LayerContext(2, st))
        q = layer_query(ad.layers[1], h1[-1])
        k = layer_keys(ad.layers[1], h1)[:, prep.vis_pos]
        ref = row_attention(q, k, ad.layers[1].self_attn.scaling).mean(0)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- the uniform lattice

def test_stride_3_lattice_on_a_4x4_grid_is_rows_0_3_by_cols_0_3_in_every_frame():
    layout = TokenLayout(num_frames=2, grid_h=4, grid_w=4)
    ids = torch.arange(layout.num_tokens)
    got = ids[lattice_mask(ids, layout, 3)].tolist()
    assert got == [0, 3, 12, 15, 16, 19, 28, 31]


def test_stride_is_coarsened_until_the_lattice_fits_the_cap():
    layout = TokenLayout(num_frames=2, grid_h=6, grid_w=6)
    ids = torch.arange(layout.num_tokens)
    assert fitting_stride(ids, layout, 3, cap=8) == 3      # rows/cols {0, 3}: 4 per frame, 8 in all
    assert fitting_stride(ids, layout, 3, cap=7) == 6      # strides 4 and 5 still give {0, 4}/{0, 5}: 8
    assert fitting_stride(ids, layout, 3, cap=1) == 6      # coarsest (1 per frame); the caller thins it


def test_lattice_counts_only_alive_tokens():
    layout = TokenLayout(num_frames=1, grid_h=4, grid_w=4)
    alive = torch.tensor([1, 2, 3, 5, 12, 14, 15])         # 0 was pruned earlier
    assert alive[lattice_mask(alive, layout, 3)].tolist() == [3, 12, 15]


def test_union_is_lattice_plus_best_of_the_rest_worked_example():
    scores = torch.tensor([0.9, 0.1, 0.8, 0.05, 0.7, 0.2])
    lattice = torch.tensor([True, False, False, True, False, False])
    keep, n_uni = uniform_plus_top(scores, lattice, k=4, cap=2)
    # lattice {0, 3}; best of the rest {2 (0.8), 4 (0.7)}; token 0's high score is not double counted
    assert keep.tolist() == [0, 2, 3, 4] and n_uni == 2


def test_a_lattice_larger_than_the_cap_is_thinned_evenly():
    scores = torch.zeros(8)
    keep, n_uni = uniform_plus_top(scores, torch.ones(8, dtype=torch.bool), k=4, cap=2)
    assert n_uni == 2 and keep.numel() == 4


# ---------------------------------------------------------------- through the engine

@pytest.mark.parametrize("retention", [0.5, 0.25, 0.1])
def test_feather_keeps_exactly_the_budget(tiny_any, retention):
    res = tiny_any.engine.run(tiny_any.prep, f"feather:retention={retention}", max_new_tokens=1)
    assert res.stages[0].kept == budget(retention, tiny_any.prep.layout.num_tokens)
    assert res.stages[0].layer == 2


def test_kept_ids_are_unique_ascending_original_and_contain_the_lattice(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "feather:retention=0.5", max_new_tokens=1)
    rec = res.stages[0]
    ids = rec.kept_ids
    layout = tiny_any.prep.layout
    assert torch.all(ids[1:] > ids[:-1]) and int(ids.min()) >= 0 and int(ids.max()) < layout.num_tokens
    lattice = torch.arange(layout.num_tokens)[lattice_mask(torch.arange(layout.num_tokens), layout, rec.info["stride"])]
    assert torch.isin(lattice, ids).all()
    assert rec.info["uniform"] + rec.info["top"] == rec.kept


def test_top_part_is_the_best_derope_scored_non_lattice_tokens(tiny_llava):
    prep, ad = tiny_llava.prep, tiny_llava.adapter
    n = prep.layout.num_tokens
    res = tiny_llava.engine.run(prep, "feather:retention=0.5", max_new_tokens=1)
    st = unpruned_state(ad, prep)
    with torch.no_grad():
        st.run_layer(0, None)
        st.run_layer(1, None)
        scores = derope_scores(LayerContext(2, st))
    lattice = lattice_mask(torch.arange(n), prep.layout, res.stages[0].info["stride"])
    kept = torch.zeros(n, dtype=torch.bool)
    kept[res.stages[0].kept_ids] = True
    top, rest = kept & ~lattice, ~kept & ~lattice
    assert scores[top].min() >= scores[rest].max()


def test_text_tokens_are_never_dropped(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "feather:retention=0.25", max_new_tokens=1)
    L, n = tiny_any.prep.input_ids.shape[1], tiny_any.prep.layout.num_tokens
    assert res.tokens_per_layer == [L, L] + [L - n + res.kept_tokens] * 2


def test_feather_is_deterministic(tiny_any):
    a = tiny_any.engine.run(tiny_any.prep, "feather", max_new_tokens=3)
    b = tiny_any.engine.run(tiny_any.prep, "feather", max_new_tokens=3)
    assert torch.equal(a.stages[0].kept_ids, b.stages[0].kept_ids) and a.tokens == b.tokens
