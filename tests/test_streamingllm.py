"""StreamingLLM: attention sinks + the recent window of the KV cache, freed after the prefill and
kept bounded while decoding."""
from __future__ import annotations

import torch

from pruning_core.engine import PrefillState
from pruning_core.flops import prefill_flops
from pruning_core.methods.streamingllm import (StreamingLLMStage, sink_window_keep, streaming_mask,
                                               window_for_retention)
from pruning_core.registry import get_method
from pruning_core.stages import CacheView
from pruning_core.tokens import budget


def _prefilled(s) -> PrefillState:
    prep, ad = s.prep, s.adapter
    n = prep.layout.num_tokens
    st = PrefillState(ad, prep, torch.arange(prep.input_ids.shape[1]), prep.embeds.clone(), torch.arange(n),
                      prep.visual_embeds)
    with torch.no_grad():
        for i in range(ad.info.num_layers):
            st.run_layer(i, None)
    return st


def _stage(**params) -> StreamingLLMStage:
    return StreamingLLMStage("streamingllm", get_method("streamingllm").validate(params))


def _bytes_per_entry(ad) -> int:
    info = ad.info
    return 2 * info.num_kv_heads * info.head_dim * 4 * info.num_layers      # K and V, fp32, all layers


# ---------------------------------------------------------------- worked examples

def test_keeps_the_sinks_and_the_most_recent_window():
    assert sink_window_keep(10, sinks=2, window=3).tolist() == [0, 1, 7, 8, 9]


def test_a_window_covering_the_cache_keeps_everything():
    assert sink_window_keep(5, sinks=4, window=8).tolist() == [0, 1, 2, 3, 4]


def test_window_reaches_back_past_the_question_to_the_last_visual_tokens():
    # 2 text, 6 visual (ids 0..5), 3 question tokens
    vis = torch.tensor([-1, -1, 0, 1, 2, 3, 4, 5, -1, -1, -1])
    assert window_for_retention(vis, sinks=2, k_visual=2) == 5      # visual 4, 5 + the question
    assert window_for_retention(vis, sinks=2, k_visual=6) == 9


def test_visual_tokens_inside_the_sinks_count_towards_the_budget():
    vis = torch.tensor([-1, 0, 1, 2, 3, 4, 5, -1])
    # sinks hold visual 0, 1, 2: one more is needed → window = visual 5 + the last text token
    assert window_for_retention(vis, sinks=4, k_visual=4) == 2


# ---------------------------------------------------------------- on a real cache

def test_after_prefill_every_layer_holds_sinks_plus_window_in_sequence_order(tiny_any):
    st = _prefilled(tiny_any)
    length = st.slots[0].numel()
    stage = _stage(retention=0.25)
    info = stage.after_prefill(CacheView(st))
    w = info["window"]
    expect = torch.cat([torch.arange(4), torch.arange(length - w, length)])
    for layer in range(tiny_any.adapter.info.num_layers):
        assert torch.equal(st.slots[layer], expect)
        assert st.cache.layers[layer].keys.shape[-2] == 4 + w
        assert st.cache.layers[layer].values.shape[-2] == 4 + w


def test_window_from_retention_keeps_the_budget_of_visual_entries_and_the_question(tiny_any):
    st = _prefilled(tiny_any)
    vis_before = st.slot_visual_ids(0)
    last_visual = int((vis_before >= 0).nonzero().max())
    question = st.slots[0][last_visual + 1:].clone()
    info = _stage(retention=0.3).after_prefill(CacheView(st))
    n = tiny_any.prep.layout.num_tokens
    assert info["visual_kv_entries"] == [budget(0.3, n)] * tiny_any.adapter.info.num_layers
    assert torch.isin(question, st.slots[0]).all()
    # the visual entries kept outside the sinks are the LAST frames' tokens
    vis = st.slot_visual_ids(0)
    kept = vis[4:][vis[4:] >= 0]
    assert torch.equal(kept, torch.arange(n - kept.numel(), n))


def test_kept_keys_are_the_original_entries_not_recomputed(tiny_llava):
    st = _prefilled(tiny_llava)
    full = st.cache.layers[2].keys.clone()
    _stage(window=10).after_prefill(CacheView(st))
    L = full.shape[-2]
    torch.testing.assert_close(st.cache.layers[2].keys, torch.cat([full[..., :4, :], full[..., L - 10:, :]], -2))


# ---------------------------------------------------------------- through the engine

def test_the_cache_is_freed_and_stays_bounded_while_decoding(tiny_any):
    ad = tiny_any.adapter
    res = tiny_any.engine.run(tiny_any.prep, "streamingllm:window=12", max_new_tokens=6)
    full = tiny_any.prep.input_ids.shape[1]
    assert res.kv_cache_bytes == (4 + 12) * _bytes_per_entry(ad) < full * _bytes_per_entry(ad)
    assert res.kv_cache_bytes_final == (4 + 12) * _bytes_per_entry(ad)


def test_without_bounded_decode_the_cache_grows_by_one_entry_per_step(tiny_any):
    ad = tiny_any.adapter
    res = tiny_any.engine.run(tiny_any.prep, "streamingllm:window=12,bounded_decode=false", max_new_tokens=6)
    assert res.kv_cache_bytes_final == (4 + 12 + res.decode_steps) * _bytes_per_entry(ad)


def test_a_window_covering_the_whole_prompt_changes_nothing(tiny_any):
    a = tiny_any.engine.run(tiny_any.prep, "none", max_new_tokens=4, collect_logits=True)
    b = tiny_any.engine.run(tiny_any.prep, "streamingllm:window=100000", max_new_tokens=4, collect_logits=True)
    assert a.tokens == b.tokens
    torch.testing.assert_close(a.logits, b.logits)


def test_with_prefill_cache_the_prefill_is_untouched_so_the_first_token_is_unchanged(tiny_any):
    a = tiny_any.engine.run(tiny_any.prep, "none", max_new_tokens=1, collect_logits=True)
    b = tiny_any.engine.run(tiny_any.prep, "streamingllm:retention=0.1,prefill=cache", max_new_tokens=1,
                            collect_logits=True)
    assert a.tokens_per_layer == b.tokens_per_layer
    torch.testing.assert_close(a.logits[0], b.logits[0])


def test_streamingllm_is_deterministic(tiny_any):
    a = tiny_any.engine.run(tiny_any.prep, "streamingllm", max_new_tokens=4)
    b = tiny_any.engine.run(tiny_any.prep, "streamingllm", max_new_tokens=4)
    assert a.tokens == b.tokens and a.stages[0].info == b.stages[0].info


# ---------------------------------------------------------------- streamed prefill

def test_streaming_mask_worked_example():
    m = streaming_mask(6, 1, 2)
    assert m.int().tolist() == [[1, 0, 0, 0, 0, 0],
                                [1, 1, 0, 0, 0, 0],
                                [1, 1, 1, 0, 0, 0],
                                [1, 0, 1, 1, 0, 0],
                                [1, 0, 0, 1, 1, 0],
                                [1, 0, 0, 0, 1, 1]]
    # the last query sees exactly the cache StreamingLLM keeps
    assert m[-1].nonzero().squeeze(1).tolist() == sink_window_keep(6, 1, 2).tolist()


@torch.no_grad()
def _masked_forward_logits(ad, prep, mask):
    h = prep.embeds
    cos, sin = ad.rotary_emb(h, prep.position_ids)
    T = h.shape[1]
    for lay in ad.layers:
        out = lay(h, attention_mask=mask.view(1, 1, T, T), position_embeddings=(cos, sin), position_ids=None,
                  past_key_values=None, use_cache=False)
        h = out[0] if isinstance(out, tuple) else out
    return ad.lm_head(ad.norm(h[:, -1:]))[0, -1].float()


def test_streamed_prefill_equals_a_forward_with_the_sink_window_mask(tiny_any):
    prep, ad = tiny_any.prep, tiny_any.adapter
    res = tiny_any.engine.run(prep, "streamingllm:window=12", max_new_tokens=1, collect_logits=True)
    ref = _masked_forward_logits(ad, prep, streaming_mask(prep.input_ids.shape[1], 4, 12, prep.embeds.device))
    torch.testing.assert_close(res.logits[0], ref, atol=1e-4, rtol=1e-4)


def test_streamed_prefill_counts_only_the_attended_pairs(tiny_any):
    prep, info = tiny_any.prep, tiny_any.adapter.info
    res = tiny_any.engine.run(prep, "streamingllm:window=12", max_new_tokens=1)
    L = prep.input_ids.shape[1]
    pairs = int(streaming_mask(L, 4, 12).sum())
    expect = prefill_flops([L] * info.num_layers, info.hidden_size, info.intermediate_size, [pairs] * info.num_layers)
    assert res.flops == expect < res.flops_unpruned
    assert res.equivalent_retention < 1.0
    full = tiny_any.engine.run(prep, "streamingllm:window=12,prefill=cache", max_new_tokens=1)
    assert full.flops == full.flops_unpruned


def test_pair_count_without_the_mask_equals_the_mask():
    from pruning_core.methods.streamingllm import streaming_pairs
    for n, s, w in ((6, 1, 2), (50, 4, 12), (30, 4, 100), (20, 0, 3), (9, 12, 1)):
        assert streaming_pairs(n, s, w) == int(streaming_mask(n, s, w).sum())


def test_analytic_report_counts_the_streamed_prefill():
    from pruning_core.flops import flops_report, get_preset
    dims = get_preset("llava-onevision-7b")
    streamed = flops_report(dims, 6272, 0, "streamingllm:retention=0.3")
    cache = flops_report(dims, 6272, 0, "streamingllm:retention=0.3,prefill=cache")
    assert cache["flops_ratio"] == 1.0
    # attention is ~19% of a 7B prefill at 6272 tokens: the streamed prefill saves part of that only
    assert 0.81 < streamed["flops_ratio"] < 0.95 and 0.8 < streamed["equivalent_retention"] < 1.0
