"""Every method runs with its default parameters on a model as deep as the built-in one (8 layers),
and the depth-dependent defaults land inside the model."""
from __future__ import annotations

import pytest

from pruning_core.registry import methods
from tiny_models import random_video, tiny_llava

DEPTH = 8


@pytest.fixture(scope="module")
def deep():
    from pruning_core.engine import Engine
    from pruning_core.loader import wrap
    model, tok = tiny_llava(layers=DEPTH)
    eng = Engine(wrap(model, tok, name="tiny-llava-8"))
    return eng, eng.prepare(random_video(4, 32, seed=1), "what colour is the circle ?")


@pytest.mark.parametrize("method", sorted(m for m in methods() if m != "none"))
def test_default_plan_runs_and_its_layers_are_in_range(deep, method):
    eng, prep = deep
    res = eng.run(prep, [{"method": method}], max_new_tokens=1)
    layers = [s.layer for s in res.stages if s.layer is not None]
    assert all(1 <= k < DEPTH for k in layers), layers
    assert 0.0 < res.equivalent_retention <= 1.0


def test_multi_stage_schedules_spread_over_the_depth(deep):
    eng, prep = deep
    pdrop = [s.layer for s in eng.run(prep, [{"method": "pdrop"}], max_new_tokens=1).stages]
    hieravid = [s.layer for s in eng.run(prep, [{"method": "hieravid"}], max_new_tokens=1).stages if s.layer]
    assert pdrop == [2, 4, 6]          # PDrop's [8, 16, 24] of 32 layers, scaled to 8
    assert hieravid == [DEPTH // 2]    # 2 stages (4 for 28 layers, scaled), the second at the middle
