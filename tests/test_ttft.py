"""TTFT has one meaning: vision encode + pre-LLM stages + prefill, in the result and its JSON."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("plan", ["none", "random:retention=0.5", "random:retention=0.5+fastv:layer=2,retention=0.2"])
def test_ttft_is_vision_plus_pre_llm_stages_plus_prefill(tiny_llava, plan):
    res = tiny_llava.engine.run(tiny_llava.prep, plan, max_new_tokens=1)
    assert res.vision_ms > 0 and res.prefill_ms > 0 and res.pre_llm_ms >= 0
    assert res.ttft_ms == pytest.approx(res.vision_ms + res.pre_llm_ms + res.prefill_ms)
    js = res.to_json()
    assert js["ttft_ms"] == pytest.approx(js["vision_ms"] + js["pre_llm_ms"] + js["prefill_ms"], abs=2e-3)


def test_pre_llm_stage_time_is_not_counted_as_prefill(tiny_llava):
    res = tiny_llava.engine.run(tiny_llava.prep, "random:retention=0.5", max_new_tokens=1)
    assert res.pre_llm_ms >= res.stages[0].overhead_ms
