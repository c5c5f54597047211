"""PyramidDrop: stage boundaries scaled to depth, λ^j of the ORIGINAL count per stage, the
target-FLOPs mode, and the ranking by the boundary layer's own attention row."""
from __future__ import annotations

import pytest
import torch

from reference import unpruned_state

from pruning_core.engine import Engine
from pruning_core.errors import PlanError
from pruning_core.flops import equivalent_retention, get_preset, layer_flops
from pruning_core.attention import scores_from_hidden
from pruning_core.methods.pdrop import drop_layers, ratio_for_flops, schedule_flops, shifted_layers
from pruning_core.tokens import budget
from tiny_models import random_video, tiny_adapter


# ---------------------------------------------------------------- the schedule

def test_boundaries_are_the_papers_8_16_24_of_32_layers_scaled_to_depth():
    assert drop_layers(32) == [8, 16, 24]
    assert drop_layers(28) == [7, 14, 21]      # LLaVA-OneVision-7B / Qwen2-VL-7B
    assert drop_layers(24) == [6, 12, 18]      # Qwen2-0.5B
    assert drop_layers(4) == [1, 2, 3]         # the tiny test model


def test_boundaries_of_a_two_layer_model_collapse_to_one():
    assert drop_layers(2) == [1]


def test_first_layer_shifts_the_schedule_keeping_the_stage_length():
    assert shifted_layers(28, 4, 4) == [4, 12, 20]


def test_ratio_solver_recovers_the_ratio_that_produced_the_flops():
    d, m, L, N, T = 3584, 18944, 28, 6272, 0
    target = schedule_flops(0.37, [4, 12, 20], L, T, N, N, d, m)
    lam, ok = ratio_for_flops(target, [4, 12, 20], L, T, N, N, d, m)
    assert ok and lam == pytest.approx(0.37, abs=1e-9)


def test_ratio_solver_reports_a_target_below_the_full_layers_as_unreachable():
    d, m, L, N = 3584, 18944, 28, 6272
    # layers 0..6 alone cost 7/28 of the unpruned FLOPs: 10% everywhere is out of reach
    target = L * layer_flops(0.10 * N, d, m)
    lam, ok = ratio_for_flops(target, drop_layers(L), L, 0, N, N, d, m)
    assert not ok and lam == 0.0


def test_analytic_schedule_of_the_default_plan_on_llava_onevision_7b():
    from pruning_core.flops import flops_report
    rep = flops_report(get_preset("llava-onevision-7b"), 6272, 0, "pdrop")
    assert rep["schedule"] == {"7": 3136, "14": 1568, "21": 784}


# ---------------------------------------------------------------- through the engine

@pytest.mark.parametrize("fixture", ["tiny_llava", "tiny_qwen2vl"])
def test_stage_j_keeps_lambda_to_the_j_of_the_original_count(request, fixture):
    s = request.getfixturevalue(fixture)
    res = s.engine.run(s.prep, "pdrop", max_new_tokens=1)
    n = s.prep.layout.num_tokens
    assert [r.layer for r in res.stages] == [1, 2, 3]
    assert [r.kept for r in res.stages] == [budget(0.5, n), budget(0.25, n), budget(0.125, n)]


def test_each_stage_keeps_a_subset_of_the_previous_one_in_original_ids(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "pdrop", max_new_tokens=1)
    prev = torch.arange(tiny_any.prep.layout.num_tokens)
    for rec in res.stages:
        ids = rec.kept_ids
        assert torch.all(ids[1:] > ids[:-1])
        assert torch.isin(ids, prev).all()
        prev = ids


def test_text_tokens_are_never_dropped(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "pdrop", max_new_tokens=1)
    L = tiny_any.prep.input_ids.shape[1]
    n = tiny_any.prep.layout.num_tokens
    assert res.tokens_per_layer == [L] + [L - n + r.kept for r in res.stages]


def test_pdrop_is_deterministic(tiny_any):
    a = tiny_any.engine.run(tiny_any.prep, "pdrop", max_new_tokens=3)
    b = tiny_any.engine.run(tiny_any.prep, "pdrop", max_new_tokens=3)
    assert all(torch.equal(x.kept_ids, y.kept_ids) for x, y in zip(a.stages, b.stages)) and a.tokens == b.tokens


def test_target_flops_mode_matches_the_equivalent_retention(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "pdrop:retention=0.5,match=constant,first_layer=1", max_new_tokens=1)
    info = tiny_any.adapter.info
    eq = equivalent_retention(res.tokens_per_layer, res.text_tokens, res.visual_tokens,
                              info.hidden_size, info.intermediate_size)
    assert res.stages[0].info["match"] == "constant"
    # λ is continuous, each stage rounds to whole tokens: within one token of the target
    assert abs(eq - 0.5) < 1.0 / res.visual_tokens


def test_target_mode_defaults_to_fastv_k2_flops_and_first_drop_at_layer_2():
    from pruning_core.flops import flops_report
    dims = get_preset("llava-onevision-7b")
    rep = flops_report(dims, 6272, 0, "pdrop:retention=0.25")
    fastv = flops_report(dims, 6272, 0, "fastv:layer=2,retention=0.25")
    assert rep["plan"].count("match=fastv") == 1
    assert sorted(int(k) for k in rep["schedule"]) == [2, 11, 19]
    assert rep["tflops"] == pytest.approx(fastv["tflops"], rel=1e-4) == pytest.approx(11.0, abs=0.01)


def test_sharp_table1_pdrop_row_28_5_percent_at_11_tflops():
    """ShaRP Table 1: PDrop at 28.5% spends FastV-25%'s 11.0 TFLOPs (LLaVA-OV-7B, 32×196 tokens).

    ShaRP runs PDrop from the 4th layer; its four rows (28.5/19.6/11.5/1.5% at 11.0/9.31/7.66/6.03
    TFLOPs) are reproduced by two drops at [4, 16] with R = λ, the share kept at the first drop.
    """
    from pruning_core.flops import flops_report
    dims = get_preset("llava-onevision-7b")
    rep = flops_report(dims, 6272, 0, "pdrop:ratio=0.285,first_layer=4,stages=3")
    assert sorted(int(k) for k in rep["schedule"]) == [4, 16]
    assert rep["tflops"] == pytest.approx(11.0, rel=0.03)
    for paper_r, fastv_r in ((0.285, 0.25), (0.196, 0.20), (0.115, 0.15), (0.015, 0.10)):
        solved = flops_report(dims, 6272, 0, f"pdrop:retention={fastv_r},first_layer=4,stages=3")
        assert solved["tflops"] == pytest.approx(flops_report(dims, 6272, 0, f"fastv:retention={fastv_r}")["tflops"],
                                                 rel=1e-3)
        assert solved["schedule"]["4"] / 6272 == pytest.approx(paper_r, abs=0.013)


def test_unreachable_target_is_refused_with_the_lowest_reachable_retention(tiny_llava):
    # 4 layers, first drop at layer 2: layers 0-1 already cost half the FLOPs of 25% everywhere
    with pytest.raises(PlanError, match=r"pdrop: retention 0.25 \(match=constant\) is unreachable.*lowest reachable"):
        tiny_llava.engine.run(tiny_llava.prep, "pdrop:retention=0.25,match=constant", max_new_tokens=1)


def test_unreachable_target_is_refused_in_the_analytic_report_too():
    from pruning_core.flops import flops_report
    with pytest.raises(PlanError, match="unreachable"):
        flops_report(get_preset("llava-onevision-7b"), 6272, 0, "pdrop:retention=0.08,match=constant")


def test_lowest_reachable_retention_on_llava_onevision_7b():
    from pruning_core.methods.pdrop import lowest_reachable
    d, m, L, N = 3584, 18944, 28, 6272
    # from layer 2 every FastV-K=2 target is reachable; 2 full layers of 28 bound a constant R
    assert lowest_reachable(shifted_layers(L, 4, 2), L, 0, N, d, m, "fastv") < 1e-3
    low = lowest_reachable(shifted_layers(L, 4, 2), L, 0, N, d, m, "constant")
    assert 2 / 28 < low < 2 / 28 + 0.02
    assert lowest_reachable(drop_layers(L), L, 0, N, d, m, "constant") > 0.25   # the default [7,14,21]


def test_first_layer_out_of_range_is_a_plan_error(tiny_llava):
    with pytest.raises(PlanError, match="first_layer 4 is out of range"):
        tiny_llava.engine.run(tiny_llava.prep, "pdrop:first_layer=4", max_new_tokens=1)


# ---------------------------------------------------------------- the ranking

def _eager_setup(kind: str):
    ad = tiny_adapter(kind, "eager", seed=7)
    eng = Engine(ad)
    return ad, eng, eng.prepare(random_video(4, 32, seed=8), "which shape appears first ?")


def _eager_attention_rows(ad, prep) -> tuple:
    kw = {"inputs_embeds": prep.embeds, "output_attentions": True}
    if prep.position_ids.dim() == 3:
        kw["position_ids"] = prep.position_ids
    with torch.no_grad():
        return ad.language_model(**kw).attentions


@pytest.mark.parametrize("kind", ["llava", "qwen2vl"])
def test_pdrop_score_is_the_boundary_layers_own_last_token_attention_row(kind):
    """scores_from_hidden (layer k's q/k on its input, RoPE/M-RoPE applied) == the eager attention
    row of layer k for the last token, restricted to the visual columns."""
    ad, eng, prep = _eager_setup(kind)
    st = unpruned_state(ad, prep, 1)
    with torch.no_grad():
        ours = scores_from_hidden(ad.layers[1], st.hidden[0], st.cos, st.sin, st.vis_pos)
    ref = _eager_attention_rows(ad, prep)[1][0, :, -1, prep.vis_pos].float().mean(0)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)


def test_first_drop_keeps_the_tokens_layer_k_attends_to_most():
    ad, eng, prep = _eager_setup("llava")
    res = eng.run(prep, "pdrop", max_new_tokens=1)
    row = _eager_attention_rows(ad, prep)[1][0, :, -1, prep.vis_pos].float().mean(0)   # layer 1 = boundary
    kept = res.stages[0].kept_ids
    dropped = torch.ones(prep.layout.num_tokens, dtype=torch.bool)
    dropped[kept] = False
    assert row[kept].min() >= row[dropped].max()


def test_previous_layer_scoring_ranks_by_the_layer_before_like_fastv():
    ad, eng, prep = _eager_setup("llava")
    res = eng.run(prep, "pdrop:scoring=previous_layer", max_new_tokens=1)
    row = _eager_attention_rows(ad, prep)[0][0, :, -1, prep.vis_pos].float().mean(0)   # layer 0
    kept = res.stages[0].kept_ids
    dropped = torch.ones(prep.layout.num_tokens, dtype=torch.bool)
    dropped[kept] = False
    assert row[kept].min() >= row[dropped].max()
