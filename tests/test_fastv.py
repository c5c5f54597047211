"""FastV through the engine: budget, ordering, text kept, positions kept, decode = no-cache recompute."""
from __future__ import annotations

import pytest
import torch

from pruning_core.errors import PlanError
from pruning_core.tokens import budget
from reference import kept_rows_after, recompute_logits, unpruned_state


@pytest.mark.parametrize("retention", [0.5, 0.25, 0.1])
def test_fastv_keeps_exactly_the_budget(tiny_any, retention):
    res = tiny_any.engine.run(tiny_any.prep, f"fastv:layer=2,retention={retention}", max_new_tokens=1)
    n = tiny_any.prep.layout.num_tokens
    assert res.kept_tokens == budget(retention, n)
    assert res.stages[0].kept == budget(retention, n)


def test_fastv_ids_are_unique_ascending_original(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "fastv:layer=2,retention=0.3", max_new_tokens=1)
    ids = res.stages[0].kept_ids
    assert torch.all(ids[1:] > ids[:-1])
    assert int(ids.min()) >= 0 and int(ids.max()) < tiny_any.prep.layout.num_tokens


def test_fastv_never_drops_text_tokens(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "fastv:layer=2,retention=0.25", max_new_tokens=1)
    L = tiny_any.prep.input_ids.shape[1]
    n = tiny_any.prep.layout.num_tokens
    assert res.tokens_per_layer[:2] == [L, L]
    assert all(t == L - n + res.kept_tokens for t in res.tokens_per_layer[2:])


def test_fastv_is_deterministic(tiny_any):
    a = tiny_any.engine.run(tiny_any.prep, "fastv:layer=2,retention=0.25", max_new_tokens=3)
    b = tiny_any.engine.run(tiny_any.prep, "fastv:layer=2,retention=0.25", max_new_tokens=3)
    assert torch.equal(a.stages[0].kept_ids, b.stages[0].kept_ids) and a.tokens == b.tokens


def test_fastv_decode_equals_no_cache_recompute_with_original_positions(tiny_any):
    """Cached decode on the pruned cache == a full recompute of the same kept set at original positions
    (for Qwen2-VL this covers the 3-row M-RoPE ids and the rope delta)."""
    eng, prep = tiny_any.engine, tiny_any.prep
    res = eng.run(prep, "fastv:layer=2,retention=0.25", max_new_tokens=5, collect_logits=True)
    rows = kept_rows_after(prep, res.stages[0].kept_ids)
    ref = recompute_logits(tiny_any.adapter, prep, res.tokens, {2: rows})
    torch.testing.assert_close(res.logits, ref, atol=1e-4, rtol=1e-4)


def test_fastv_scores_pick_the_most_attended_tokens(tiny_llava):
    prep, ad = tiny_llava.prep, tiny_llava.adapter
    n = prep.layout.num_tokens
    st = unpruned_state(ad, prep, 2)
    scores = st.last_token_scores(1)
    res = tiny_llava.engine.run(prep, "fastv:layer=2,retention=0.25", max_new_tokens=1)
    kept = res.stages[0].kept_ids
    dropped = torch.ones(n, dtype=torch.bool)
    dropped[kept] = False
    assert scores[kept].min() >= scores[dropped].max()


@pytest.mark.parametrize("plan,needle", [
    ("nosuch:retention=0.2", "unknown method"),
    ("fastv:layer=4,retention=0.2", "out of range"),
    ("fastv:layer=2,retention=0", "outside"),
    ("fastv:layer=2,retention=1.5", "outside"),
    ("fastv:layer=2,keep=3", "unknown parameter"),
    ("fastv:layer=two", "must be int"),
])
def test_bad_plans_get_clear_errors(tiny_llava, plan, needle):
    with pytest.raises(PlanError, match=needle):
        tiny_llava.engine.run(tiny_llava.prep, plan, max_new_tokens=1)
