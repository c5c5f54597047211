"""ShaRP readings that change the kept set: PosC in logit space (eq. 2/5), the bias over the tokens a
pre-LLM stage left, SegM-aware scoring, RegD dedup against the adjacent token, the bias run's cost."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pruning_core.block_mask import as_dense
from pruning_core import attention
from pruning_core.methods import sharp_ops as ops
from pruning_core.prefill_state import PrefillState
from pruning_core.registry import build_stages, parse_plan
from pruning_core.tokens import budget, topk_ordered
from reference import kept_rows_after
from test_sharp import _bias_cache  # noqa: F401  (autouse: every test computes its own bias)


def _state(setup, rows=None, visual=None) -> PrefillState:
    """The prompt (visual rows replaced by ``visual`` if given) restricted to ``rows``, no stage."""
    prep, ad = setup.prep, setup.adapter
    emb = prep.embeds.clone()
    vis = prep.visual_embeds if visual is None else visual
    emb[0, prep.vis_pos] = vis.to(emb.dtype)
    rows = torch.arange(prep.input_ids.shape[1]) if rows is None else rows
    alive = torch.isin(prep.vis_pos, rows).nonzero().squeeze(1)
    return PrefillState(ad, prep, rows, emb.index_select(1, rows), alive, vis[alive])


def _layer0_logits(setup, rows=None, visual=None) -> torch.Tensor:
    st = _state(setup, rows, visual)
    st.run_layer(0, None)
    return st.last_token_scores(0, space="logit")


def test_logit_scores_are_the_pre_softmax_row_of_eq_2(tiny_any):
    st = _state(tiny_any)
    st.run_layer(0, None)
    logits = st.last_token_scores(0, mean_heads=False, space="logit")
    probs = st.cache_row_scores(0, mean_heads=False)
    cols = st._alive_cache_columns(0)
    torch.testing.assert_close(F.softmax(st.cache_row_scores(0, False, "logit"), -1), probs)
    assert logits.shape == probs[:, cols].shape


def test_posc_in_logit_space_ranks_by_logit_minus_lambda_times_black_logit(tiny_any):
    black = tiny_any.adapter.encode_black(tiny_any.prep.layout, tiny_any.frames)
    a, b = _layer0_logits(tiny_any), _layer0_logits(tiny_any, visual=black)
    k = budget(0.25, tiny_any.prep.layout.num_tokens)
    res = tiny_any.engine.run(tiny_any.prep, "sharp:segm=0,regd=0,retention=0.25", max_new_tokens=1)
    assert res.stages[0].info["bias_over"] == "all"
    assert res.stages[0].kept_ids.tolist() == topk_ordered(a - 0.6 * b, k).tolist()


def test_logit_and_prob_space_are_different_readings(tiny_llava):
    plan = "sharp:segm=0,regd=0,retention=0.5,lam=3,posc_space="
    a = tiny_llava.engine.run(tiny_llava.prep, plan + "logit", max_new_tokens=1).stages[0].kept_ids
    b = tiny_llava.engine.run(tiny_llava.prep, plan + "prob", max_new_tokens=1).stages[0].kept_ids
    assert not torch.equal(a, b)


@pytest.mark.parametrize("space", ["prob", "logit"])
def test_after_a_pre_llm_stage_the_bias_runs_over_the_same_survivors(tiny_any, space):
    """ShaRP Table 3's chains: b is computed on the black video restricted to the rows that entered
    layer 0, so ã and b are softmaxes over the same sequence."""
    prep = tiny_any.prep
    res = tiny_any.engine.run(prep, f"random:retention=0.5,seed=1+sharp:segm=0,regd=0,retention=0.2,"
                                    f"posc_space={space}", max_new_tokens=1)
    survivors = res.stages[0].kept_ids
    rows = kept_rows_after(prep, survivors)
    black = tiny_any.adapter.encode_black(prep.layout, tiny_any.frames)
    st_a, st_b = _state(tiny_any, rows), _state(tiny_any, rows, black)
    st_a.run_layer(0, None)
    st_b.run_layer(0, None)
    a, b = st_a.last_token_scores(0, space=space), st_b.last_token_scores(0, space=space)
    k = budget(0.2, prep.layout.num_tokens)
    assert res.stages[1].info["bias_over"] == "survivors"
    assert res.stages[1].kept_ids.tolist() == survivors[topk_ordered(a - 0.6 * b, k)].tolist()


def test_entering_scoring_uses_the_next_layers_q_k_on_the_segm_masked_output(tiny_any):
    prep, eng = tiny_any.prep, tiny_any.engine
    res = eng.run(prep, "sharp:posc=0,regd=0,retention=0.25,scoring=entering", max_new_tokens=1)
    # by hand: layer 0 under the SegM mask, then layer 1's q/k on its output
    st = _state(tiny_any)
    sharp = build_stages(parse_plan("sharp:posc=0,regd=0,retention=0.25,scoring=entering"), eng.info)[0]
    mask = as_dense(sharp.early_mask(st))
    st.run_layer(0, mask.view(1, 1, *mask.shape))
    s = attention.scores_from_hidden(tiny_any.adapter.layers[1], st.hidden[0], st.cos, st.sin, st.vis_pos)
    k = budget(0.25, prep.layout.num_tokens)
    assert res.stages[0].kept_ids.tolist() == topk_ordered(s, k).tolist()


def test_with_entering_scoring_segm_can_change_the_selection(tiny_llava):
    plan = "sharp:posc=0,regd=0,retention=0.25,scoring=entering,tau_seg=0.99,segm="
    on = tiny_llava.engine.run(tiny_llava.prep, plan + "1", max_new_tokens=1).stages[0]
    off = tiny_llava.engine.run(tiny_llava.prep, plan + "0", max_new_tokens=1).stages[0]
    assert on.info["segments"] > 1
    assert not torch.equal(on.kept_ids, off.kept_ids)
    # the default (cache) reading cannot: layer 0's keys precede the mask
    plan = plan.replace("scoring=entering", "scoring=cache")
    on = tiny_llava.engine.run(tiny_llava.prep, plan + "1", max_new_tokens=1).stages[0]
    off = tiny_llava.engine.run(tiny_llava.prep, plan + "0", max_new_tokens=1).stages[0]
    assert torch.equal(on.kept_ids, off.kept_ids)


def _chain() -> torch.Tensor:
    """Unit vectors a, b, c, d with sim(a,b) = sim(b,c) = cos 30° > 0.8 but sim(a,c) = cos 60° < 0.8."""
    ang = torch.tensor([0.0, 30.0, 60.0, 150.0]) * torch.pi / 180
    return torch.stack([torch.cos(ang), torch.sin(ang)], 1)


def test_adjacent_dedup_chains_through_neighbours():
    x = _chain()
    group = torch.zeros(4, dtype=torch.long)
    assert ops.dedup_scan(x, group, 0.8, "adjacent").tolist() == [0, 0, 0, 3]
    assert ops.dedup_scan(x, group, 0.8, "pivot").tolist() == [0, 0, 2, 3]


def test_adjacent_dedup_never_crosses_a_segment():
    x = _chain()
    group = torch.tensor([0, 0, 1, 1])
    assert ops.dedup_scan(x, group, 0.8, "adjacent").tolist() == [0, 0, 2, 3]


def test_regd_keeps_the_top_k_count_under_both_dedup_readings(tiny_llava):
    for how in ("adjacent", "pivot"):
        res = tiny_llava.engine.run(tiny_llava.prep, f"sharp:retention=0.25,dedup_compare={how}", max_new_tokens=1)
        st = res.stages[0]
        assert st.kept == budget(0.25, tiny_llava.prep.layout.num_tokens)
        assert st.info["filled_centers"] + st.info["filled_members"] + st.info["restored_registers"] \
            == st.info["deduplicated"]


def test_the_bias_run_is_counted_in_the_stage_overhead_when_computed(tiny_llava):
    first = tiny_llava.engine.run(tiny_llava.prep, "sharp", max_new_tokens=1).stages[0]
    second = tiny_llava.engine.run(tiny_llava.prep, "sharp", max_new_tokens=1).stages[0]
    assert first.info["bias_source"] == "computed" and second.info["bias_source"] == "memory"
    assert first.overhead_ms >= first.info["bias_ms"] > 0
