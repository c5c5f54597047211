"""ShaRP through the engine on the tiny LLaVA-OneVision and Qwen2-VL configs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pruning_core.block_mask import as_dense
from pruning_core.engine import PrefillState
from pruning_core.errors import PlanError
from pruning_core.methods import sharp_bias
from pruning_core.methods.sharp import SharpStage
from pruning_core.registry import get_method
from pruning_core.tokens import budget, topk_ordered
from sharp_reference import mask_reference, segments_reference

ONLY_SEGM = "sharp:posc=0,regd=0"


@pytest.fixture(autouse=True)
def _bias_cache(tmp_path, monkeypatch):
    """Every test computes its own bias into a private cache dir."""
    monkeypatch.setenv("VIDEOPRUNE_CACHE", str(tmp_path))
    sharp_bias.clear_memory()
    yield
    sharp_bias.clear_memory()


def _state(setup, embeds=None, visual=None) -> PrefillState:
    prep, ad = setup.prep, setup.adapter
    n = prep.layout.num_tokens
    emb = prep.embeds.clone() if embeds is None else embeds
    return PrefillState(ad, prep, torch.arange(prep.input_ids.shape[1]), emb, torch.arange(n),
                        prep.visual_embeds if visual is None else visual)


def _reference_mask(setup) -> torch.Tensor:
    prep = setup.prep
    frame = prep.layout.frame_of(torch.arange(prep.layout.num_tokens))
    seg = segments_reference(prep.visual_embeds, frame.tolist(), 0.9)
    return mask_reference(prep.input_ids.shape[1], prep.vis_pos.tolist(), seg)


# ---------------------------------------------------------------- invariants


@pytest.mark.parametrize("retention", [0.5, 0.235, 0.1])
def test_sharp_keeps_exactly_the_budget(tiny_any, retention):
    res = tiny_any.engine.run(tiny_any.prep, f"sharp:retention={retention}", max_new_tokens=1)
    assert res.stages[0].kept == res.kept_tokens == budget(retention, tiny_any.prep.layout.num_tokens)


def test_sharp_ids_are_unique_ascending_original(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "sharp:retention=0.3", max_new_tokens=1)
    ids = res.stages[0].kept_ids
    assert torch.all(ids[1:] > ids[:-1])
    assert int(ids.min()) >= 0 and int(ids.max()) < tiny_any.prep.layout.num_tokens


def test_sharp_never_drops_text_tokens_and_prunes_entering_layer_1(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "sharp", max_new_tokens=1)
    L = tiny_any.prep.input_ids.shape[1]
    n = tiny_any.prep.layout.num_tokens
    assert res.stages[0].layer == 1
    assert res.tokens_per_layer[0] == L
    assert all(t == L - n + res.kept_tokens for t in res.tokens_per_layer[1:])


def test_sharp_is_deterministic(tiny_any):
    a = tiny_any.engine.run(tiny_any.prep, "sharp", max_new_tokens=3)
    b = tiny_any.engine.run(tiny_any.prep, "sharp", max_new_tokens=3)
    assert torch.equal(a.stages[0].kept_ids, b.stages[0].kept_ids) and a.tokens == b.tokens


@pytest.mark.parametrize("layer", [1, 2])
def test_sharp_with_every_component_off_equals_fastv(tiny_any, layer):
    eng, prep = tiny_any.engine, tiny_any.prep
    a = eng.run(prep, f"sharp:layer={layer},retention=0.25,segm=0,posc=0,regd=0", max_new_tokens=3,
                collect_logits=True)
    b = eng.run(prep, f"fastv:layer={layer},retention=0.25", max_new_tokens=3, collect_logits=True)
    assert torch.equal(a.stages[0].kept_ids, b.stages[0].kept_ids)
    assert a.tokens == b.tokens
    torch.testing.assert_close(a.logits, b.logits, atol=0, rtol=0)


# ---------------------------------------------------------------- SegM


def test_segm_mask_equals_brute_force_mask(tiny_any):
    stage = SharpStage("sharp", get_method("sharp").defaults(), 1)
    got = stage.early_mask(_state(tiny_any))
    assert torch.equal(as_dense(got), _reference_mask(tiny_any))


def test_segm_off_gives_no_mask(tiny_any):
    params = {**get_method("sharp").defaults(), "segm": False}
    assert SharpStage("sharp", params, 1).early_mask(_state(tiny_any)) is None


def test_segm_scores_at_layer_2_come_from_the_masked_layers(tiny_any):
    """With pruning entering layer 2, layer 1's keys are computed under the eq. 4 mask of layer 0, so
    the ranking is the top-K of the last-token scores of a masked run. (Entering layer 1 the ranking
    uses layer 0's keys, which no mask can change: there SegM acts through the hidden states only.)"""
    mask = _reference_mask(tiny_any)
    st = _state(tiny_any)
    for i in range(2):
        st.run_layer(i, mask.view(1, 1, *mask.shape))
    masked = st.last_token_scores(1)
    plain = _state(tiny_any)
    for i in range(2):
        plain.run_layer(i, None)
    k = budget(0.25, tiny_any.prep.layout.num_tokens)
    assert not torch.allclose(masked, plain.last_token_scores(1))      # the mask matters here
    res = tiny_any.engine.run(tiny_any.prep, ONLY_SEGM + ",layer=2,retention=0.25", max_new_tokens=1)
    assert res.stages[0].kept_ids.tolist() == topk_ordered(masked, k).tolist()


@pytest.mark.parametrize("layer", [1, 2])
def test_segm_masks_only_the_layers_before_pruning(tiny_any, layer):
    """Prefill logits = a no-cache forward with the eq. 4 mask in layers 0..k-1 and causal attention after."""
    ad, prep = tiny_any.adapter, tiny_any.prep
    res = tiny_any.engine.run(prep, ONLY_SEGM + f",layer={layer},retention=0.25", max_new_tokens=1,
                              collect_logits=True)
    mask = _reference_mask(tiny_any).view(1, 1, prep.input_ids.shape[1], -1)
    h = prep.embeds
    cos, sin = ad.rotary_emb(h, prep.position_ids)
    L = prep.input_ids.shape[1]
    rows = torch.ones(L, dtype=torch.bool)
    rows[prep.vis_pos] = False
    rows[prep.vis_pos[res.stages[0].kept_ids]] = True
    k = layer
    for i, dec in enumerate(ad.layers):
        if i == k:
            h, cos, sin = h[:, rows], cos[:, rows], sin[:, rows]
        out = dec(h, attention_mask=mask if i < k else None, position_embeddings=(cos, sin), position_ids=None,
                    past_key_values=None, use_cache=False)
        h = out[0] if isinstance(out, tuple) else out
    ref = ad.lm_head(ad.norm(h[:, -1:]))[0, -1].float()
    torch.testing.assert_close(res.logits[0], ref, atol=1e-4, rtol=1e-4)


def test_identical_frames_share_a_segment(tiny_llava):
    eng = tiny_llava.engine
    frames = tiny_llava.frames
    video = np.concatenate([frames[:1], frames[:1], frames[1:2], frames[1:2]])
    prep = eng.prepare(video, "what colour is the circle ?")
    res = eng.run(prep, "sharp", max_new_tokens=1)
    seg = res.stages[0].info["segment_of_frame"]
    frame = prep.layout.frame_of(torch.arange(prep.layout.num_tokens))
    expect = segments_reference(prep.visual_embeds, frame.tolist(), 0.9)
    assert seg[0] == seg[1] and seg[2] == seg[3]
    assert seg == [expect[f * prep.layout.tokens_per_frame] for f in range(4)]


# ---------------------------------------------------------------- PosC


def _black_bias(setup) -> torch.Tensor:
    prep, ad = setup.prep, setup.adapter
    black = ad.encode_black(prep.layout, setup.frames)
    emb = prep.embeds.clone()
    emb[0, prep.vis_pos] = black.to(emb.dtype)
    st = _state(setup, emb, black)
    st.run_layer(0, None)
    return st.last_token_scores(0)


def test_posc_ranks_by_scores_minus_lambda_times_the_black_video_bias(tiny_any):
    st = _state(tiny_any)
    st.run_layer(0, None)
    a = st.last_token_scores(0)
    b = _black_bias(tiny_any)
    k = budget(0.25, tiny_any.prep.layout.num_tokens)
    expect = topk_ordered(a - 0.6 * b, k)
    res = tiny_any.engine.run(tiny_any.prep, "sharp:segm=0,regd=0,retention=0.25,posc_space=prob",
                                max_new_tokens=1)
    assert res.stages[0].kept_ids.tolist() == expect.tolist()


def test_posc_lambda_sets_the_strength_of_the_compensation(tiny_any):
    st = _state(tiny_any)
    st.run_layer(0, None)
    a = st.last_token_scores(0)
    b = _black_bias(tiny_any)
    k = budget(0.25, tiny_any.prep.layout.num_tokens)
    expect = topk_ordered(a - 5.0 * b, k)
    assert not torch.equal(expect, topk_ordered(a, k))                  # the bias changes the choice
    res = tiny_any.engine.run(tiny_any.prep, "sharp:segm=0,regd=0,retention=0.25,lam=5,posc_space=prob",
                                max_new_tokens=1)
    assert res.stages[0].kept_ids.tolist() == expect.tolist()


def test_posc_bias_is_cached_in_memory_and_on_disk_as_safetensors(tiny_llava, tmp_path):
    from safetensors.torch import load_file
    eng, prep = tiny_llava.engine, tiny_llava.prep
    first = eng.run(prep, "sharp:posc_space=prob", max_new_tokens=1).stages[0]
    second = eng.run(prep, "sharp:posc_space=prob", max_new_tokens=1).stages[0]
    assert (first.info["bias_cached"], first.info["bias_source"]) == (False, "computed")
    assert (second.info["bias_cached"], second.info["bias_source"]) == (True, "memory")
    assert first.info["bias_ms"] > 0
    files = list((tmp_path / "sharp_bias").glob("*.safetensors"))
    assert len(files) == 1
    assert torch.allclose(load_file(str(files[0]))["bias"], _black_bias(tiny_llava), atol=1e-6)
    sharp_bias.clear_memory()
    third = eng.run(prep, "sharp:posc_space=prob", max_new_tokens=1).stages[0]
    assert third.info["bias_source"] == "disk"
    assert torch.equal(third.kept_ids, first.kept_ids)


def test_posc_bias_is_keyed_by_prompt_and_layer(tiny_llava, tmp_path):
    eng = tiny_llava.engine
    eng.run(tiny_llava.prep, "sharp", max_new_tokens=1)
    other = eng.prepare(tiny_llava.frames, "how many shapes appear ?")
    assert eng.run(other, "sharp", max_new_tokens=1).stages[0].info["bias_source"] == "computed"
    assert eng.run(other, "sharp:layer=2", max_new_tokens=1).stages[0].info["bias_source"] == "computed"
    assert len(list((tmp_path / "sharp_bias").glob("*.safetensors"))) == 3


def test_a_corrupt_bias_file_is_recomputed(tiny_llava, tmp_path):
    eng, prep = tiny_llava.engine, tiny_llava.prep
    eng.run(prep, "sharp", max_new_tokens=1)
    (f,) = (tmp_path / "sharp_bias").glob("*.safetensors")
    f.write_bytes(b"not a safetensors file")
    sharp_bias.clear_memory()
    assert eng.run(prep, "sharp", max_new_tokens=1).stages[0].info["bias_source"] == "computed"


# ---------------------------------------------------------------- RegD and reporting


def test_regd_reports_each_step_and_keeps_the_top_k_count(tiny_llava):
    res = tiny_llava.engine.run(tiny_llava.prep, "sharp:retention=0.25", max_new_tokens=1)
    info = res.stages[0].info
    assert info["registers"] == res.stages[0].kept
    for key in ("attn_ms", "filter_ms", "dedup_ms", "fill_ms", "segm_ms", "bias_ms"):
        assert info[key] >= 0
    assert info["components"] == ["segm", "posc", "regd"]
    filled = info["filled_centers"] + info["filled_members"] + info["restored_registers"]
    assert filled == info["deduplicated"]


def test_regd_changes_the_kept_set_only_by_merging_and_refilling(tiny_llava):
    eng, prep = tiny_llava.engine, tiny_llava.prep
    base = eng.run(prep, "sharp:regd=0", max_new_tokens=1).stages[0]
    full = eng.run(prep, "sharp", max_new_tokens=1).stages[0]
    assert full.kept == base.kept
    n_new = len(set(full.kept_ids.tolist()) - set(base.kept_ids.tolist()))
    assert n_new == full.info["filled_centers"] + full.info["filled_members"]


@pytest.mark.parametrize("plan,needle", [
    ("sharp:tau_seg=1.5", "outside"),
    ("sharp:layer=0", "outside"),
    ("sharp:layer=4", "out of range"),
    ("sharp:segm=maybe", "must be bool"),
    ("sharp:gamma=1", "unknown parameter"),
])
def test_bad_sharp_plans_get_clear_errors(tiny_llava, plan, needle):
    with pytest.raises(PlanError, match=needle):
        tiny_llava.engine.run(tiny_llava.prep, plan, max_new_tokens=1)


def test_sharp_after_a_pre_llm_stage_counts_retention_against_the_original_tokens(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "uniform:retention=0.5+sharp:retention=0.2", max_new_tokens=1)
    n = tiny_any.prep.layout.num_tokens
    pre, sharp = res.stages
    assert sharp.kept == budget(0.2, n)
    assert set(sharp.kept_ids.tolist()) <= set(pre.kept_ids.tolist())


def test_posc_without_frames_uses_zero_embeddings_of_the_layout(tiny_llava):
    from pruning_core.adapters.base import Encoding
    from pruning_core.layout import TokenLayout
    eng = tiny_llava.engine
    layout = TokenLayout(3, 5, 5)                  # not what the tiny vision tower makes of a frame
    d = tiny_llava.adapter.info.hidden_size
    enc = Encoding(embeds=torch.randn(layout.num_tokens, d, generator=torch.Generator().manual_seed(0)),
                   layout=layout)
    prep = eng.prepare_encoded(enc, "what colour is the circle ?")
    res = eng.run(prep, "sharp:segm=0,regd=0,retention=0.2", max_new_tokens=1)
    assert res.stages[0].info["bias_input"] == "zero_embeddings"
    st = PrefillState(tiny_llava.adapter, prep, torch.arange(prep.input_ids.shape[1]), prep.embeds.clone(),
                      torch.arange(layout.num_tokens), prep.visual_embeds)
    st.run_layer(0, None)
    a = st.last_token_scores(0)
    b = st.reference_scores(torch.zeros(layout.num_tokens, d), 0)
    assert res.stages[0].kept_ids.tolist() == topk_ordered(a - 0.6 * b, budget(0.2, layout.num_tokens)).tolist()


def test_a_black_video_that_does_not_match_the_layout_is_a_clear_error():
    from types import SimpleNamespace

    from pruning_core.errors import VideoError
    from pruning_core.layout import TokenLayout
    from pruning_core.methods.sharp import _black_embeddings
    state = SimpleNamespace(layout=TokenLayout(2, 2, 2), encode_black_video=lambda: torch.zeros(6, 4),
                            prep=SimpleNamespace(frames=np.zeros((2, 8, 8, 3), np.uint8)))
    with pytest.raises(VideoError, match="encodes to 6 visual tokens"):
        _black_embeddings(state)


def test_sharp_under_eager_attention_matches_sdpa(tiny_llava):
    """The SegM mask reaches eager layers too (as an additive float mask): same kept set, same logits."""
    from pruning_core.engine import Engine
    from tiny_models import tiny_adapter
    eager = Engine(tiny_adapter("llava", "eager"))
    prep = eager.prepare(tiny_llava.frames, "what colour is the circle ?")
    a = eager.run(prep, "sharp:layer=2", max_new_tokens=2, collect_logits=True)
    b = tiny_llava.engine.run(tiny_llava.prep, "sharp:layer=2", max_new_tokens=2, collect_logits=True)
    assert torch.equal(a.stages[0].kept_ids, b.stages[0].kept_ids)
    torch.testing.assert_close(a.logits, b.logits, atol=1e-4, rtol=1e-4)
