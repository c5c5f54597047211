"""Spatial downsampling: average pooling of every frame's token grid (the floor every method must beat)."""
from __future__ import annotations

import pytest
import torch

from pruning_core.layout import TokenLayout
from pruning_core.methods.downsample import downsample, nearest_grid, pooled_grid
from pruning_core.registry import get_method


def test_registered_as_a_pre_stage():
    spec = get_method("downsample")
    assert spec.kind == "pre" and spec.defaults() == {"retention": 0.25, "factor": 0}


def test_two_by_two_pooling_equals_avg_pool2d():
    layout = TokenLayout(3, 4, 6)
    x = torch.randn(layout.num_tokens, 5)
    keep, values = downsample(x, torch.arange(layout.num_tokens), layout, 2, 3)
    ref = torch.nn.functional.avg_pool2d(x.view(3, 4, 6, 5).permute(0, 3, 1, 2), 2)     # [F, d, 2, 3]
    assert torch.allclose(values, ref.permute(0, 2, 3, 1).reshape(-1, 5), atol=1e-6)
    assert keep.numel() == 3 * 2 * 3 and torch.all(keep[1:] > keep[:-1])


def test_worked_example_cell_token_is_the_one_nearest_the_centre():
    """A 3×3 grid pooled to 1×1: one cell, centre (1, 1) = token 4, value the mean of all nine."""
    layout = TokenLayout(1, 3, 3)
    x = torch.arange(9, dtype=torch.float32).view(9, 1)
    keep, values = downsample(x, torch.arange(9), layout, 1, 1)
    assert keep.tolist() == [4] and values[0, 0].item() == pytest.approx(4.0)


def test_uneven_grids_split_into_cells_that_differ_by_one_row():
    layout = TokenLayout(1, 14, 14)
    keep, values = downsample(torch.ones(196, 2), torch.arange(196), layout, 5, 5)
    assert keep.numel() == 25 and torch.unique(keep).numel() == 25 and torch.allclose(values, torch.ones(25, 2))


@pytest.mark.parametrize("H,W,target", [(14, 14, 49), (14, 14, 29.4), (27, 27, 100), (16, 9, 36), (4, 4, 0.3)])
def test_nearest_grid_is_closest_to_the_budget(H, W, target):
    h, w = nearest_grid(H, W, target)
    best = min(abs(a * b - target) for a in range(1, H + 1) for b in range(1, W + 1))
    assert abs(h * w - target) == pytest.approx(best) and 1 <= h <= H and 1 <= w <= W


def test_pooling_factor_gives_ceil_grid():
    assert pooled_grid(TokenLayout(2, 14, 14), 0.5, 3) == (5, 5)
    assert pooled_grid(TokenLayout(2, 14, 14), 0.25, 0) == (7, 7)


def test_after_an_earlier_stage_only_alive_tokens_are_pooled():
    layout = TokenLayout(1, 2, 2)
    x = torch.tensor([[1.0], [3.0], [5.0]])
    keep, values = downsample(x, torch.tensor([0, 1, 3]), layout, 1, 1)
    assert keep.tolist() == [0] and values[0, 0].item() == pytest.approx(3.0)


@pytest.mark.parametrize("retention", [0.25, 0.5, 0.1])
def test_engine_keeps_frames_times_the_nearest_grid(tiny_any, retention):
    prep = tiny_any.prep
    layout = prep.layout
    res = tiny_any.engine.run(prep, f"downsample:retention={retention}", max_new_tokens=2)
    h, w = pooled_grid(layout, retention, 0)
    ids = res.stages[0].kept_ids
    assert res.kept_tokens == layout.num_frames * h * w == ids.numel()
    assert torch.all(ids[1:] > ids[:-1]) and int(ids.max()) < layout.num_tokens
    assert layout.kept_per_frame(ids).tolist() == [h * w] * layout.num_frames
    L, n = prep.input_ids.shape[1], layout.num_tokens
    assert all(t == L - n + res.kept_tokens for t in res.tokens_per_layer)


def test_engine_run_is_deterministic(tiny_any):
    a = tiny_any.engine.run(tiny_any.prep, "downsample:factor=2", max_new_tokens=3)
    b = tiny_any.engine.run(tiny_any.prep, "downsample:factor=2", max_new_tokens=3)
    assert torch.equal(a.stages[0].kept_ids, b.stages[0].kept_ids) and a.tokens == b.tokens
