"""Chains: a pre-LLM stage followed by a layer stage (ShaRP Table 3's "VisionZip → ShaRP").

The second stage only ever sees what the first kept; every stage's retention is relative to the
ORIGINAL visual count; the overlay can draw each stage's kept set.
"""
from __future__ import annotations

import pytest
import torch

from pruning_core.errors import PlanError
from pruning_core.overlay import overlay_frames, pixel_mask
from pruning_core.registry import build_stages, get_method, parse_plan
from pruning_core.tokens import budget

CHAINS = [
    ("uniform:retention=0.5", "fastv:layer=2,retention=0.25"),
    ("visionzip:retention=0.5", "sharp:retention=0.25"),          # ShaRP Table 3
    ("hieravid_merge", "sharp:retention=0.25"),                    # ShaRP Table 3 (merge stage of HieraVid)
    ("random:retention=0.5", "pdrop"),
    ("divprune:retention=0.5", "feather:retention=0.25"),
    ("uniform:retention=0.5", "framefusion"),
    ("holitom:inner=false,retention=0.3", "sharp:retention=0.15"),  # ShaRP Table 3 (HoliTom + ShaRP)
    ("downsample:retention=0.5", "fastv:layer=2,retention=0.25"),
]


def _need(step: str) -> None:
    name = step.split(":")[0]
    try:
        get_method(name)
    except PlanError:
        pytest.skip(f"method {name!r} is not registered yet")


def _spy_first_call(monkeypatch, step: str, info) -> list:
    """Record the alive visual ids the first stage of ``step`` is handed."""
    seen: list = []
    for cls in {type(s) for s in build_stages(parse_plan(step), info)}:
        original = cls.select

        def select(self, ctx, _orig=original):
            if not seen:
                seen.append(ctx.ids.detach().clone())
            return _orig(self, ctx)
        monkeypatch.setattr(cls, "select", select)
    return seen


@pytest.mark.parametrize("first,second", CHAINS, ids=[f"{a.split(':')[0]}>{b.split(':')[0]}" for a, b in CHAINS])
def test_second_stage_only_sees_what_the_first_kept(tiny_any, monkeypatch, first, second):
    _need(first), _need(second)
    seen = _spy_first_call(monkeypatch, second, tiny_any.adapter.info)
    res = tiny_any.engine.run(tiny_any.prep, f"{first}+{second}", max_new_tokens=1)
    name1 = first.split(":")[0]
    last_of_first = [r for r in res.stages if r.name == name1][-1]
    assert torch.equal(seen[0].cpu(), last_of_first.kept_ids)


@pytest.mark.parametrize("first,second", CHAINS, ids=[f"{a.split(':')[0]}>{b.split(':')[0]}" for a, b in CHAINS])
def test_every_stage_keeps_a_subset_of_the_one_before(tiny_any, first, second):
    _need(first), _need(second)
    res = tiny_any.engine.run(tiny_any.prep, f"{first}+{second}", max_new_tokens=1)
    assert len(res.stages) >= 2
    prev = torch.arange(res.visual_tokens)
    for rec in res.stages:
        assert torch.isin(rec.kept_ids, prev).all()
        assert torch.all(rec.kept_ids[1:] > rec.kept_ids[:-1])
        prev = rec.kept_ids


@pytest.mark.parametrize("first,second", [CHAINS[0], CHAINS[1], CHAINS[4]],
                         ids=["uniform>fastv", "visionzip>sharp", "divprune>feather"])
def test_each_stage_retention_is_relative_to_the_original_count(tiny_any, first, second):
    _need(first), _need(second)
    res = tiny_any.engine.run(tiny_any.prep, f"{first}+{second}", max_new_tokens=1)
    n = res.visual_tokens
    a, b = res.stages[0], res.stages[-1]
    assert a.kept == budget(0.5, n) and b.kept == budget(0.25, n)        # 25% of N, not 25% of N/2
    assert a.retention == pytest.approx(a.kept / n) and b.retention == pytest.approx(b.kept / n)
    assert res.retention == pytest.approx(budget(0.25, n) / n)


def test_a_later_stage_asking_for_more_than_is_alive_keeps_all_alive(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "uniform:retention=0.25+fastv:layer=2,retention=0.5", max_new_tokens=1)
    assert torch.equal(res.stages[1].kept_ids, res.stages[0].kept_ids)


def test_pdrop_after_a_pre_stage_counts_its_ratios_from_the_original(tiny_llava):
    res = tiny_llava.engine.run(tiny_llava.prep, "uniform:retention=0.75+pdrop", max_new_tokens=1)
    n = res.visual_tokens
    assert [r.kept for r in res.stages] == [budget(0.75, n), budget(0.5, n), budget(0.25, n), budget(0.125, n)]


def test_streamingllm_after_a_pre_stage_keeps_its_budget_of_the_original(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "uniform:retention=0.5+streamingllm:retention=0.2", max_new_tokens=1)
    cache = res.stages[-1].info["visual_kv_entries"]
    assert cache == [budget(0.2, res.visual_tokens)] * len(cache)


def test_overlays_draw_both_stages_the_second_inside_the_first(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "uniform:retention=0.5+fastv:layer=2,retention=0.25",
                              max_new_tokens=1)
    frames, layout = tiny_any.frames, tiny_any.prep.layout
    h, w = frames.shape[1:3]
    m1 = pixel_mask(layout, res.stages[0].kept_ids, h, w)
    m2 = pixel_mask(layout, res.stages[1].kept_ids, h, w)
    assert m2.sum() < m1.sum() and not (m2 & ~m1).any()
    o1 = overlay_frames(frames, layout, res.stages[0].kept_ids, outline=False, show_retention=False)
    o2 = overlay_frames(frames, layout, res.stages[1].kept_ids, outline=False, show_retention=False)
    assert o1.shape == o2.shape == frames.shape
    which = torch.arange(frames.shape[0]) // layout.frames_per_step
    m2_src = m2[which.numpy()]
    assert (o2[m2_src] == frames[m2_src]).all()          # kept cells keep their pixels
    assert not (o1 == o2).all()                          # the second stage dims more


def test_a_pre_stage_after_a_layer_stage_is_a_plan_error(tiny_llava):
    with pytest.raises(PlanError, match="cannot follow a layer stage"):
        tiny_llava.engine.run(tiny_llava.prep, "fastv:layer=2,retention=0.5+uniform:retention=0.25", max_new_tokens=1)
