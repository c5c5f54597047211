"""SharpV through the engine on the tiny LLaVA-OV and Qwen2-VL configs: kept ids, withdrawal layer,
visual-free KV cache, decode = no-cache recompute with the same pruning and withdrawal."""
from __future__ import annotations

import pytest
import torch

from pruning_core.tokens import budget
from reference import kept_rows_after, recompute_logits


def similarity_curve(setup) -> list[float]:
    """The Fig. 3 curve of this model and video: M = -1 never withdraws."""
    res = setup.engine.run(setup.prep, "sharpv_memory:m=-1", max_new_tokens=1)
    return [s for _, s in res.stages[-1].info["similarity"]]


def threshold_first_below_at(curve: list[float]) -> tuple[float, int]:
    """An M that the curve first falls below at its first new minimum after layer 0, and that layer."""
    for j in range(1, len(curve) - 1):
        if curve[j] < min(curve[:j]):
            return (min(curve[:j]) + curve[j]) / 2, j
    pytest.skip("similarity curve has no new minimum before the last layer")


def keep_rows_of(res, prep) -> dict[int, torch.Tensor]:
    """Sequence rows entering each layer where a stage changed them, for the no-cache reference."""
    rows = {}
    for rec in res.stages:
        layer = 0 if rec.kind == "pre" else rec.layer
        if layer is not None:
            rows[layer] = kept_rows_after(prep, rec.kept_ids)
    return rows


# ---------------------------------------------------------------- visual SharpV

def test_visual_stage_ids_are_original_ascending_and_match_info(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "sharpv", max_new_tokens=1)
    rec = res.stages[0]
    ids = rec.kept_ids
    layout = tiny_any.prep.layout
    assert torch.all(ids[1:] > ids[:-1]) and int(ids.max()) < layout.num_tokens
    assert layout.kept_per_frame(ids).tolist() == rec.info["kept_per_frame"]
    assert rec.retention == pytest.approx(rec.info["retention"])


def test_visual_stage_never_drops_text_tokens(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "sharpv:mode=manual,k=1.2", max_new_tokens=1)
    L = tiny_any.prep.input_ids.shape[1]
    n = tiny_any.prep.layout.num_tokens
    assert set(res.tokens_per_layer) == {L - n + res.kept_tokens}


def test_visual_stage_matched_budget_through_engine(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "sharpv:target_retention=0.25", max_new_tokens=1)
    assert res.kept_tokens == budget(0.25, tiny_any.prep.layout.num_tokens)


def test_visual_stage_decode_equals_no_cache_recompute(tiny_any):
    eng, prep = tiny_any.engine, tiny_any.prep
    res = eng.run(prep, "sharpv", max_new_tokens=4, collect_logits=True)
    ref = recompute_logits(tiny_any.adapter, prep, res.tokens, keep_rows_of(res, prep))
    torch.testing.assert_close(res.logits, ref, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- memory SharpV

def test_similarity_curve_reported_for_every_layer(tiny_any):
    curve = similarity_curve(tiny_any)
    assert len(curve) == tiny_any.adapter.info.num_layers
    assert all(-1.0 <= s <= 1.0 for s in curve)


def test_memory_withdraws_from_first_layer_below_m(tiny_any):
    m, j = threshold_first_below_at(similarity_curve(tiny_any))
    res = tiny_any.engine.run(tiny_any.prep, f"sharpv_memory:m={m}", max_new_tokens=1)
    n_layers = tiny_any.adapter.info.num_layers
    L = tiny_any.prep.input_ids.shape[1]
    n = tiny_any.prep.layout.num_tokens
    info = res.stages[-1].info
    assert info["first_withdrawn_layer"] == j + 1
    assert res.withdrawals[0]["after_layer"] == j
    # layers up to j saw every visual token; later ones none, in the prefill and in the cache
    assert res.tokens_per_layer == [L] * (j + 1) + [L - n] * (n_layers - j - 1)
    assert info["visual_kv_entries"] == [n] * (j + 1) + [0] * (n_layers - j - 1)
    assert info["memory_ratio"] == pytest.approx((j + 1) / n_layers)


def test_memory_frees_kv_cache(tiny_any):
    m, j = threshold_first_below_at(similarity_curve(tiny_any))
    full = tiny_any.engine.run(tiny_any.prep, "none", max_new_tokens=1)
    res = tiny_any.engine.run(tiny_any.prep, f"sharpv_memory:m={m}", max_new_tokens=1)
    assert res.kv_cache_bytes < full.kv_cache_bytes


def test_memory_evict_measured_layer_also_clears_that_layer(tiny_any):
    m, j = threshold_first_below_at(similarity_curve(tiny_any))
    res = tiny_any.engine.run(tiny_any.prep, f"sharpv_memory:m={m},evict_measured_layer=true", max_new_tokens=1)
    n = tiny_any.prep.layout.num_tokens
    entries = res.stages[-1].info["visual_kv_entries"]
    assert entries == [n] * j + [0] * (len(entries) - j)


def test_decode_after_withdrawal_equals_no_cache_recompute(tiny_any):
    eng, prep = tiny_any.engine, tiny_any.prep
    m, j = threshold_first_below_at(similarity_curve(tiny_any))
    res = eng.run(prep, f"sharpv_memory:m={m}", max_new_tokens=4, collect_logits=True)
    assert res.stages[0].layer == j + 1
    ref = recompute_logits(tiny_any.adapter, prep, res.tokens, keep_rows_of(res, prep))
    torch.testing.assert_close(res.logits, ref, atol=1e-4, rtol=1e-4)


def test_token_granularity_withdraws_progressively_and_decodes_consistently(tiny_any):
    eng, prep = tiny_any.engine, tiny_any.prep
    curve = similarity_curve(tiny_any)
    m = sorted(curve)[len(curve) // 2]     # about half the layers' mean is below: some tokens go early
    res = eng.run(prep, f"sharpv_memory:m={m},granularity=token", max_new_tokens=4, collect_logits=True)
    entries = res.stages[-1].info["visual_kv_entries"]
    assert entries == sorted(entries, reverse=True) and entries[-1] < entries[0]
    ref = recompute_logits(tiny_any.adapter, prep, res.tokens, keep_rows_of(res, prep))
    torch.testing.assert_close(res.logits, ref, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- chaining

def test_visual_layer_and_memory_stages_chain(tiny_any):
    eng, prep = tiny_any.engine, tiny_any.prep
    plan = "sharpv:target_retention=0.5+fastv:layer=1,retention=0.25+sharpv_memory:m=2.0e-1,granularity=token"
    res = eng.run(prep, plan, max_new_tokens=4, collect_logits=True)
    kinds = [r.kind for r in res.stages]
    assert kinds[:2] == ["pre", "layer"] and kinds[-1] == "cache"
    assert set(res.stages[1].kept_ids.tolist()) <= set(res.stages[0].kept_ids.tolist())
    ref = recompute_logits(tiny_any.adapter, prep, res.tokens, keep_rows_of(res, prep))
    torch.testing.assert_close(res.logits, ref, atol=1e-4, rtol=1e-4)
