"""DivPrune: greedy max-min diversity (MMDP) with a running minimum-distance vector."""
from __future__ import annotations

import math

import pytest
import torch

from pruning_core.layout import TokenLayout
from pruning_core.methods.divprune import DivPruneStage, mmdp_greedy, nearest_neighbour_distance
from pruning_core.stages import PreContext
from pruning_core.tokens import budget, normalize


def _angles(*deg: float) -> torch.Tensor:
    r = torch.tensor(deg, dtype=torch.float64) * math.pi / 180
    return torch.stack([r.cos(), r.sin()], 1).float()


def _matrix_reference(x: torch.Tensor, k: int) -> list[int]:
    """The authors' formulation: a full n x n cosine-distance matrix, re-reduced over the chosen set each step."""
    xn = normalize(x)
    dist = 1.0 - xn @ xn.T
    first = torch.topk(dist, 2, dim=0, largest=False).values[1].argmax()
    chosen = [int(first)]
    for _ in range(1, k):
        score = dist[chosen].min(dim=0).values
        score[chosen] = float("-inf")
        chosen.append(int(score.argmax()))
    return chosen


def test_worked_example_four_points_on_a_circle():
    """Points at 90°, 0°, 180°, 10°. The loneliest point (nearest neighbour farthest) is 180°; the point
    farthest from it is 0°; then 90° (distance 1 to both) beats 10° (distance 0.015 to 0°).
    {0°, 90°, 180°} is the max-min 3-subset (min distance 1, vs 0.826 for {10°, 90°, 180°})."""
    x = _angles(90, 0, 180, 10)
    order, gain = mmdp_greedy(x, 3)
    assert order.tolist() == [2, 1, 0]
    assert gain[1:].tolist() == pytest.approx([2.0, 1.0], abs=1e-6)


def test_first_pick_is_the_token_farthest_from_its_nearest_neighbour():
    x = _angles(0, 5, 40, 45, 130)
    nn = nearest_neighbour_distance(normalize(x), chunk=2)
    assert nn.tolist() == pytest.approx([1 - math.cos(math.radians(d)) for d in (5, 5, 5, 5, 85)], abs=1e-6)
    assert int(mmdp_greedy(x, 1)[0][0]) == 4


def test_matches_the_full_matrix_formulation_on_random_tokens():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(60, 16, generator=g)
    assert mmdp_greedy(x, 15)[0].tolist() == _matrix_reference(x, 15)


def test_duplicate_tokens_are_never_picked_twice():
    x = torch.cat([_angles(0, 90)] * 4)                 # 8 tokens, only 2 distinct directions
    order, _ = mmdp_greedy(x, 5)
    assert len(set(order.tolist())) == 5


def test_ties_break_towards_the_lowest_index():
    x = _angles(0, 0, 180, 180)
    assert mmdp_greedy(x, 2)[0].tolist() == [0, 2]


def _ctx(n_frames=4, grid=4, d=8, seed=0):
    layout = TokenLayout(n_frames, grid, grid)
    emb = torch.randn(layout.num_tokens, d, generator=torch.Generator().manual_seed(seed))
    return PreContext(emb, torch.arange(layout.num_tokens), layout, torch.zeros(d), torch.zeros(2, d))


@pytest.mark.parametrize("retention", [0.098, 0.25, 0.5, 1.0])
def test_stage_keeps_exactly_the_budget_ascending_and_unique(retention):
    ctx = _ctx()
    sel = DivPruneStage("divprune", {"retention": retention}).select(ctx)
    assert sel.keep.numel() == budget(retention, ctx.n_original)
    assert torch.all(sel.keep[1:] > sel.keep[:-1]) and sel.values is None


def test_stage_reports_the_objective_of_the_kept_set():
    ctx = _ctx()
    sel = DivPruneStage("divprune", {"retention": 0.25}).select(ctx)
    xn = normalize(ctx.embeds[sel.keep])
    dist = 1.0 - xn @ xn.T
    dist.fill_diagonal_(float("inf"))
    assert sel.info["min_pairwise_distance"] == pytest.approx(float(dist.min()), abs=1e-5)


# ---------------------------------------------------------------- through the engine, both backbones

@pytest.mark.parametrize("retention", [0.5, 0.25, 0.1])
def test_engine_keeps_exactly_the_budget_with_original_ids(tiny_any, retention):
    res = tiny_any.engine.run(tiny_any.prep, f"divprune:retention={retention}", max_new_tokens=1)
    n = tiny_any.prep.layout.num_tokens
    ids = res.stages[0].kept_ids
    assert res.kept_tokens == budget(retention, n) == ids.numel()
    assert torch.all(ids[1:] > ids[:-1]) and int(ids.min()) >= 0 and int(ids.max()) < n


def test_engine_picks_the_greedy_set_of_the_visual_embeddings(tiny_any):
    prep = tiny_any.prep
    res = tiny_any.engine.run(prep, "divprune:retention=0.25", max_new_tokens=1)
    order, _ = mmdp_greedy(prep.visual_embeds, budget(0.25, prep.layout.num_tokens))
    assert res.stages[0].kept_ids.tolist() == sorted(order.tolist())


def test_engine_never_drops_text_tokens(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "divprune:retention=0.25", max_new_tokens=1)
    L, n = tiny_any.prep.input_ids.shape[1], tiny_any.prep.layout.num_tokens
    assert all(t == L - n + res.kept_tokens for t in res.tokens_per_layer)


def test_engine_run_is_deterministic(tiny_any):
    a = tiny_any.engine.run(tiny_any.prep, "divprune:retention=0.2", max_new_tokens=3)
    b = tiny_any.engine.run(tiny_any.prep, "divprune:retention=0.2", max_new_tokens=3)
    assert torch.equal(a.stages[0].kept_ids, b.stages[0].kept_ids) and a.tokens == b.tokens


def test_chain_divprune_then_fastv_sees_only_what_divprune_kept(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "divprune:retention=0.5+fastv:layer=2,retention=0.2", max_new_tokens=1)
    assert bool(torch.isin(res.stages[1].kept_ids, res.stages[0].kept_ids).all())
