"""HieraVid through the registry and the engine, on the tiny LLaVA-OneVision and Qwen2-VL configs."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pruning_core.errors import PlanError
from pruning_core.flops import flops_report, get_preset
from pruning_core.layout import TokenLayout
from pruning_core.registry import build_stages, format_plan, get_method, parse_plan
from pruning_core.tokens import budget, topk_per_group
from reference import kept_rows_after, recompute_logits


def _stages(plan: str, info):
    return build_stages(parse_plan(plan), info)


def _kept_layers(res) -> list:
    return [(s.layer or 0, s.kept) for s in res.stages]


# ---------------------------------------------------------------- registry and plans

def test_registered_with_paper_defaults():
    spec = get_method("hieravid")
    d = spec.defaults()
    assert (d["retention"], d["beta"], d["lam"]) == (0.3, 0.4, 0.5)
    assert d["segment"] and d["dpp"] and d["schedule"]
    assert get_method("hieravid_merge").kind == "pre"


def test_plan_round_trips_through_the_cli_form():
    plan = parse_plan("hieravid:retention=0.2,beta=0.5,dpp=false")
    assert parse_plan(format_plan(plan)) == plan


@pytest.mark.parametrize("plan,needle", [
    ("hieravid:beta=1.5", "outside"),
    ("hieravid:retention=0", "outside"),
    ("hieravid:lam=high", "must be float"),
    ("hieravid:dpp=maybe", "must be bool"),
    ("hieravid:k=3", "unknown parameter"),
])
def test_bad_parameters_get_clear_errors(plan, needle):
    with pytest.raises(PlanError, match=needle):
        parse_plan(plan)


def test_schedule_is_four_stages_on_a_28_layer_model():
    stages = _stages("hieravid", get_preset("llava-onevision-7b"))
    assert [s.kind for s in stages] == ["pre", "layer", "layer", "layer"]
    assert [s.layer for s in stages[1:]] == [7, 14, 21]


def test_schedule_scales_with_depth_and_can_be_switched_off():
    assert [s.layer for s in _stages("hieravid", get_preset("qwen2-0.5b"))[1:]] == [8, 16]
    assert len(_stages("hieravid:schedule=false", get_preset("llava-onevision-7b"))) == 1


@pytest.mark.parametrize("target", [0.3, 0.2, 0.1])
def test_flops_of_the_schedule_match_the_target_retention(target):
    rep = flops_report(get_preset("llava-onevision-7b"), 32 * 196, 0, f"hieravid:retention={target}")
    assert rep["data_dependent"] == []
    assert list(rep["schedule"]) == ["0", "7", "14", "21"]
    assert rep["equivalent_retention"] == pytest.approx(target, abs=2e-3)


# ---------------------------------------------------------------- engine, both backbones

@pytest.mark.parametrize("retention", [0.3, 0.2, 0.1])
def test_every_stage_keeps_exactly_its_scheduled_budget(tiny_any, retention):
    plan = f"hieravid:retention={retention}"
    n = tiny_any.prep.layout.num_tokens
    expected = [st.expected_kept(n) for st in _stages(plan, tiny_any.adapter.info)]
    res = tiny_any.engine.run(tiny_any.prep, plan, max_new_tokens=1)
    assert [s.kept for s in res.stages] == expected
    assert expected == sorted(expected, reverse=True)


def test_kept_ids_are_unique_ascending_original_and_nested(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "hieravid:retention=0.3", max_new_tokens=1)
    n = tiny_any.prep.layout.num_tokens
    prev = set(range(n))
    for s in res.stages:
        ids = s.kept_ids
        assert torch.all(ids[1:] > ids[:-1]) and int(ids.min()) >= 0 and int(ids.max()) < n
        assert set(ids.tolist()) <= prev
        prev = set(ids.tolist())


def test_text_tokens_are_never_dropped(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "hieravid:retention=0.2", max_new_tokens=1)
    L, n = tiny_any.prep.input_ids.shape[1], tiny_any.prep.layout.num_tokens
    per_layer = {}
    for s in res.stages:
        per_layer[s.layer or 0] = s.kept
    expected, kept = [], n
    for layer in range(len(res.tokens_per_layer)):
        kept = per_layer.get(layer, kept)
        expected.append(L - n + kept)
    assert res.tokens_per_layer == expected


def test_runs_are_deterministic(tiny_any):
    a = tiny_any.engine.run(tiny_any.prep, "hieravid:retention=0.2", max_new_tokens=3)
    b = tiny_any.engine.run(tiny_any.prep, "hieravid:retention=0.2", max_new_tokens=3)
    assert all(torch.equal(x.kept_ids, y.kept_ids) for x, y in zip(a.stages, b.stages))
    assert a.tokens == b.tokens


@pytest.mark.parametrize("plan", ["hieravid:segment=false", "hieravid:dpp=false", "hieravid:schedule=false",
                                  "hieravid:segment=false,dpp=false,schedule=false"])
def test_every_ablation_runs_and_meets_its_budget(tiny_any, plan):
    n = tiny_any.prep.layout.num_tokens
    stages = _stages(plan, tiny_any.adapter.info)
    res = tiny_any.engine.run(tiny_any.prep, plan, max_new_tokens=1)
    assert [s.kept for s in res.stages] == [st.expected_kept(n) for st in stages]
    if "schedule=false" in plan:
        assert len(res.stages) == 1 and res.kept_tokens == budget(0.3, n)


def test_the_pre_stage_reports_segments_merging_and_equivalent_retention(tiny_llava):
    res = tiny_llava.engine.run(tiny_llava.prep, "hieravid", max_new_tokens=1)
    info = res.stages[0].info
    assert info["segments"][0] == 0 and len(info["overlap"]) == tiny_llava.prep.layout.num_frames - 1
    assert info["merged"] > 0
    assert info["stage_layers"] == [0, 2]
    assert info["equivalent_retention"] == pytest.approx(0.3, abs=0.02)


def test_decode_equals_a_no_cache_recompute_of_the_same_kept_sets(tiny_any):
    """Without merging (values untouched) the pruned cached decode equals a full recompute that
    drops the same tokens entering layer 0 and layer 2 at their original positions."""
    eng, prep = tiny_any.engine, tiny_any.prep
    res = eng.run(prep, "hieravid:segment=false,retention=0.3", max_new_tokens=4, collect_logits=True)
    keep_rows = {0: kept_rows_after(prep, res.stages[0].kept_ids), 2: kept_rows_after(prep, res.stages[1].kept_ids)}
    ref = recompute_logits(tiny_any.adapter, prep, res.tokens, keep_rows)
    torch.testing.assert_close(res.logits, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ["llava", "qwen2vl"])
def test_merging_a_still_video_keeps_the_first_frame(kind, tiny_llava, tiny_qwen2vl):
    setup = tiny_llava if kind == "llava" else tiny_qwen2vl
    still = np.repeat(setup.frames[:1], 4, axis=0)
    prep = setup.engine.prepare(still, "what colour is the circle ?")
    layout = prep.layout
    res = setup.engine.run(prep, f"hieravid_merge:retention={1 / layout.num_frames}", max_new_tokens=1)
    assert res.stages[0].kept_ids.tolist() == list(range(layout.tokens_per_frame))
    assert res.stages[0].info["segments"] == [0]


def test_hieravid_follows_an_earlier_pre_stage(tiny_llava):
    n = tiny_llava.prep.layout.num_tokens
    res = tiny_llava.engine.run(tiny_llava.prep, "random:retention=0.7+hieravid:retention=0.2", max_new_tokens=1)
    assert set(res.stages[1].kept_ids.tolist()) <= set(res.stages[0].kept_ids.tolist())
    assert res.stages[1].kept == _stages("hieravid:retention=0.2", tiny_llava.adapter.info)[0].expected_kept(n)


def test_merge_chains_into_a_layer_method(tiny_qwen2vl):
    res = tiny_qwen2vl.engine.run(tiny_qwen2vl.prep, "hieravid_merge:retention=0.5+fastv:layer=2,retention=0.2",
                                  max_new_tokens=1)
    n = tiny_qwen2vl.prep.layout.num_tokens
    assert [s.kept for s in res.stages] == [budget(0.5, n), budget(0.2, n)]


# ---------------------------------------------------------------- the layer stage on a hand-made context

def _layer_ctx(hidden: torch.Tensor, scores: torch.Tensor, layout: TokenLayout):
    n = hidden.shape[0]
    return SimpleNamespace(ids=torch.arange(n), layout=layout, n_original=layout.num_tokens, visual_hidden=hidden,
                           query_hidden=hidden.mean(0), scores=lambda: scores)


def _built(plan: str):
    info = SimpleNamespace(num_layers=4, hidden_size=8, intermediate_size=16)
    return _stages(plan, info)


def test_layer_stage_without_dpp_keeps_the_most_attended_tokens_per_segment():
    pre, layer = _built("hieravid:dpp=false,retention=0.3")
    layout = TokenLayout(4, 2, 2)
    layer.schedule.seg_of_frame = torch.tensor([0, 0, 1, 1])
    g = torch.Generator().manual_seed(0)
    hidden, scores = torch.randn(16, 8, generator=g), torch.rand(16, generator=g)
    sel = layer.select(_layer_ctx(hidden, scores, layout))
    k = torch.tensor(sel.info["segment_budgets"])
    assert int(k.sum()) == layer.expected_kept(16)
    seg = torch.tensor([0] * 8 + [1] * 8)
    assert sel.keep.tolist() == topk_per_group(scores, seg, k).tolist()


def test_layer_stage_uses_the_segments_found_before_the_llm():
    pre, layer = _built("hieravid:retention=0.3")
    layout = TokenLayout(4, 2, 2)
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(16, 8, generator=g)
    layer.schedule.seg_of_frame = torch.tensor([0, 1, 1, 2])
    sel = layer.select(_layer_ctx(hidden, torch.rand(16, generator=g), layout))
    k = sel.info["segment_budgets"]
    assert len(k) == 3
    counts = torch.bincount(torch.tensor([0, 1, 1, 2])[sel.keep // 4], minlength=3)
    assert counts.tolist() == k
