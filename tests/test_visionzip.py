"""VisionZip: dominant tokens by received vision attention + merged contextual tokens; vision_attention."""
from __future__ import annotations

import pytest
import torch

from pruning_core.adapters.base import VisionAccess
from pruning_core.errors import PlanError
from pruning_core.layout import TokenLayout
from pruning_core.methods.visionzip import (VisionZipStage, contextual_targets, split_dominant,
                                            visionzip_select)
from pruning_core.stages import PreContext
from pruning_core.tokens import budget
from pruning_core.vision_attention import patch_attention, qwen_vision_qk, received_attention, token_attention


class _capture:
    """Records the args/kwargs of one module call (what the adapters' hooks do)."""

    def __init__(self, module):
        self.module = module

    def __enter__(self):
        self.h = self.module.register_forward_pre_hook(self._hook, with_kwargs=True)
        return self

    def _hook(self, _m, args, kwargs):
        self.args, self.kwargs = args, dict(kwargs)

    def __exit__(self, *exc):
        self.h.remove()


def _access(layer, hidden, kwargs=None, pool=lambda v: v, backbone="test"):
    return VisionAccess(backbone, layer, hidden, kwargs or {}, 0, pool)


# ---------------------------------------------------------------- received attention (pure)

def test_received_attention_is_mean_over_heads_and_queries_of_softmax():
    torch.manual_seed(0)
    q, k = torch.randn(3, 5, 4), torch.randn(3, 5, 4)
    expected = (q @ k.transpose(-1, -2) * 0.5).softmax(-1).mean(dim=(0, 1))
    assert torch.allclose(received_attention(q, k, 0.5, chunk=2), expected, atol=1e-6)


def test_received_attention_sums_to_one_per_segment():
    torch.manual_seed(1)
    q, k = torch.randn(2, 7, 4), torch.randn(2, 7, 4)
    assert received_attention(q, k, 1.0, chunk=3).sum().item() == pytest.approx(1.0, abs=1e-5)


def test_received_attention_favours_the_key_every_query_points_at():
    k = torch.zeros(1, 4, 4)
    k[0, 2, 2] = 10.0
    q = k[:, 2:3].expand(1, 4, 4).clone()     # every query aligned with key 2 only
    att = received_attention(q, k, 1.0)
    assert int(att.argmax()) == 2 and att[2] > 0.9


# ---------------------------------------------------------------- SigLIP: equals eager attention of that layer

def _tiny_siglip():
    from transformers import SiglipVisionConfig, SiglipVisionModel
    cfg = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                             image_size=32, patch_size=8)
    cfg._attn_implementation = "eager"  # only the TEST's reference uses eager weights
    torch.manual_seed(0)
    return SiglipVisionModel(cfg).eval()


def test_siglip_patch_attention_equals_eager_weights_of_the_used_layer():
    model = _tiny_siglip()
    layer = getattr(model, "vision_model", model).encoder.layers[-1]
    with torch.no_grad(), _capture(layer) as cap:
        out = model(pixel_values=torch.randn(3, 3, 32, 32), output_attentions=True)
    ref = out.attentions[-1].mean(dim=(1, 2))                      # [F, P]: head + query mean
    att, keys = patch_attention(_access(layer, cap.args[0]), chunk=5)
    assert att.shape == (3 * 16,) and keys.shape == (3 * 16, 8)
    assert torch.allclose(att.view(3, 16), ref, atol=1e-5)


def test_token_attention_pools_patches_with_the_adapter_function():
    model = _tiny_siglip()
    layer = getattr(model, "vision_model", model).encoder.layers[-1]
    with torch.no_grad(), _capture(layer) as cap:
        model(pixel_values=torch.randn(2, 3, 32, 32))

    def pool(v):  # 4x4 patches -> 2x2 tokens per frame, mean of each 2x2 block
        g = v.float().reshape(2, 2, 2, 2, 2, *v.shape[1:])
        return g.mean(dim=(2, 4)).reshape(8, *v.shape[1:])

    att, keys = token_attention(_access(layer, cap.args[0], pool=pool))
    patch_att, _ = patch_attention(_access(layer, cap.args[0]))
    assert att.shape == (8,) and keys.shape == (8, 8)
    assert torch.allclose(att[0], patch_att.view(2, 4, 4)[0, :2, :2].mean(), atol=1e-6)


# ---------------------------------------------------------------- Qwen2-VL vision block

def test_qwen_vision_qk_reproduces_the_block_attention_output():
    from transformers.models.qwen2_vl.configuration_qwen2_vl import Qwen2VLVisionConfig
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VisionTransformerPretrainedModel
    cfg = Qwen2VLVisionConfig(depth=2, embed_dim=32, hidden_size=48, num_heads=4, patch_size=4,
                              spatial_merge_size=2, temporal_patch_size=2)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    vit = Qwen2VisionTransformerPretrainedModel(cfg).eval()
    block = vit.blocks[-1]
    with torch.no_grad(), _capture(block) as cap:
        vit(torch.randn(32, 3 * 2 * 4 * 4), grid_thw=torch.tensor([[2, 4, 4]]))   # two temporal pairs
    hidden, pe, cu = cap.args[0], cap.kwargs["position_embeddings"], cap.kwargs["cu_seqlens"]
    with torch.no_grad():
        q, k, _, scale = qwen_vision_qk(block, hidden, pe)
        x = block.norm1(hidden)
        v = block.attn.qkv(x).reshape(32, 3, 4, -1)[:, 2].transpose(0, 1)
        out = []
        for a, b in zip(cu.tolist()[:-1], cu.tolist()[1:]):
            probs = (q[:, a:b] @ k[:, a:b].transpose(-1, -2) * scale).softmax(-1)
            out.append((probs @ v[:, a:b]).transpose(0, 1).reshape(b - a, -1))
        mine = block.attn.proj(torch.cat(out))
        ref = block.attn(x, cu_seqlens=cu, position_embeddings=pe)
    assert torch.allclose(mine, ref, atol=1e-5)
    att, keys = patch_attention(_access(block, hidden, cap.kwargs))
    assert att.shape == (32,) and keys.shape == (32, 8)
    assert torch.allclose(att.view(2, 16).sum(-1), torch.ones(2), atol=1e-5)   # one distribution per pair


def test_patch_attention_rejects_an_unknown_layer():
    with pytest.raises(PlanError, match="unsupported vision layer"):
        patch_attention(_access(torch.nn.Linear(2, 2), torch.zeros(1, 2, 2)))


# ---------------------------------------------------------------- selection math on hand-made tensors

def test_split_dominant_follows_the_54_to_10_ratio():
    dom, ctx = split_dominant(torch.tensor([64, 10, 1]), 54 / 64)
    assert dom.tolist() == [54, 8, 1] and ctx.tolist() == [10, 2, 0]


def test_contextual_targets_are_strided_inside_each_group():
    # group 0 has 6 remaining tokens and 2 targets (step 3); group 1 has 4 and 1 target (step 4)
    groups = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    mask = contextual_targets(groups, torch.tensor([2, 1]))
    assert mask.nonzero().squeeze(1).tolist() == [0, 3, 6]


def test_worked_example_dominant_by_attention_and_contextual_means():
    """8 tokens, budget 4, ratio 1/2: the 2 most attended are dominant; the other 6 form 2 targets
    (remaining ranks 0 and 3 = tokens 0 and 5) that absorb their most similar tokens by key."""
    attention = torch.tensor([0.1, 0.9, 0.2, 0.8, 0.05, 0.3, 0.0, 0.1])
    metric = torch.tensor([[1.0, 0], [0, 1], [0.9, 0.1], [0, 1], [0.8, 0.3], [0, 1], [0.1, 0.9], [0.2, 1.0]])
    embeds = torch.arange(16, dtype=torch.float32).view(8, 2)
    keep, values, info = visionzip_select(embeds, attention, metric, torch.zeros(8, dtype=torch.long),
                                          torch.tensor([4]), 0.5)
    assert keep.tolist() == [0, 1, 3, 5]
    assert torch.equal(values[1], embeds[1]) and torch.equal(values[2], embeds[3])
    assert torch.allclose(values[0], embeds[[0, 2, 4]].mean(0))      # token 0 absorbs 2 and 4
    assert torch.allclose(values[3], embeds[[5, 6, 7]].mean(0))      # token 5 absorbs 6 and 7
    assert info == {"dominant": 2, "contextual": 2, "merged": 4, "groups": 1}


def test_tokens_never_merge_across_frames():
    attention = torch.tensor([0.9, 0.0, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0])
    metric = torch.tensor([[1.0, 0]] * 8)
    embeds = torch.tensor([[1.0], [2.0], [3.0], [4.0], [10.0], [20.0], [30.0], [40.0]])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    keep, values, _ = visionzip_select(embeds, attention, metric, groups, torch.tensor([2, 2]), 0.5)
    assert keep.tolist() == [0, 1, 4, 5]
    assert values[:, 0].tolist() == [1.0, 3.0, 10.0, 30.0]


def _fake_ctx(n_frames=3, grid=4, d=6, seed=0, vision=None):
    g = torch.Generator().manual_seed(seed)
    layout = TokenLayout(n_frames, grid, grid)
    n = layout.num_tokens
    emb = torch.randn(n, d, generator=g)
    if vision is None:
        att = torch.rand(n, generator=g)
        keys = torch.randn(n, 5, generator=g)
        vision = _StubVision(att, keys)
    return PreContext(emb, torch.arange(n), layout, torch.zeros(d), torch.zeros(2, d), vision)


class _StubVision:
    """Stands in for VisionAccess: hands back fixed per-token attention and keys."""

    def __init__(self, att, keys):
        self.att, self.keys = att, keys


@pytest.fixture
def stub_tokens(monkeypatch):
    import pruning_core.methods.visionzip as vz
    monkeypatch.setattr(vz, "token_attention", lambda vision: (vision.att, vision.keys))


@pytest.mark.parametrize("retention", [0.5, 0.25, 0.1])
@pytest.mark.parametrize("scope", ["frame", "video"])
def test_stage_keeps_exactly_the_budget_with_ascending_unique_ids(stub_tokens, retention, scope):
    ctx = _fake_ctx()
    sel = VisionZipStage("visionzip", {"retention": retention, "dominant_ratio": 54 / 64, "scope": scope}).select(ctx)
    assert sel.keep.numel() == budget(retention, ctx.n_original)
    assert torch.all(sel.keep[1:] > sel.keep[:-1]) and sel.values.shape == (sel.keep.numel(), 6)


def test_frame_scope_gives_every_frame_an_equal_share(stub_tokens):
    ctx = _fake_ctx(n_frames=3)                                     # 48 tokens, budget 12 → 4 per frame
    sel = VisionZipStage("visionzip", {"retention": 0.25, "dominant_ratio": 1.0, "scope": "frame"}).select(ctx)
    assert ctx.layout.kept_per_frame(sel.keep).tolist() == [4, 4, 4]
    top = torch.cat([f * 16 + torch.topk(ctx.vision.att[f * 16:(f + 1) * 16], 4).indices for f in range(3)])
    assert sel.keep.tolist() == sorted(top.tolist())


def test_stage_without_vision_access_is_a_clear_error():
    ctx = _fake_ctx()
    ctx.vision = None
    with pytest.raises(PlanError, match="vision encoder"):
        VisionZipStage("visionzip", {"retention": 0.25, "dominant_ratio": 0.8, "scope": "frame"}).select(ctx)


def test_stage_is_deterministic(stub_tokens):
    st = VisionZipStage("visionzip", {"retention": 0.2, "dominant_ratio": 54 / 64, "scope": "frame"})
    a, b = st.select(_fake_ctx()), st.select(_fake_ctx())
    assert torch.equal(a.keep, b.keep) and torch.equal(a.values, b.values)


# ---------------------------------------------------------------- through the engine, both backbones

@pytest.mark.parametrize("retention", [0.5, 0.25])
def test_engine_keeps_exactly_the_budget(tiny_any, retention):
    res = tiny_any.engine.run(tiny_any.prep, f"visionzip:retention={retention}", max_new_tokens=1)
    n = tiny_any.prep.layout.num_tokens
    assert res.kept_tokens == budget(retention, n) == res.stages[0].kept
    ids = res.stages[0].kept_ids
    assert torch.all(ids[1:] > ids[:-1]) and int(ids.max()) < n


def test_engine_never_drops_text_tokens(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "visionzip:retention=0.25", max_new_tokens=1)
    L, n = tiny_any.prep.input_ids.shape[1], tiny_any.prep.layout.num_tokens
    assert all(t == L - n + res.kept_tokens for t in res.tokens_per_layer)


def test_engine_dominant_tokens_are_the_most_attended_per_frame(tiny_any):
    prep = tiny_any.prep
    att, _ = token_attention(prep.encoding.vision)
    res = tiny_any.engine.run(prep, "visionzip:retention=0.25,dominant_ratio=1.0", max_new_tokens=1)
    ids, layout = res.stages[0].kept_ids, prep.layout
    for f in range(layout.num_frames):
        in_f = layout.frame_of(ids) == f
        frame_att = att[f * layout.tokens_per_frame:(f + 1) * layout.tokens_per_frame]
        kept = ids[in_f] - f * layout.tokens_per_frame
        dropped = torch.ones(layout.tokens_per_frame, dtype=torch.bool)
        dropped[kept] = False
        assert frame_att[kept].min() >= frame_att[dropped].max()


def test_engine_run_is_deterministic(tiny_any):
    a = tiny_any.engine.run(tiny_any.prep, "visionzip:retention=0.3", max_new_tokens=3)
    b = tiny_any.engine.run(tiny_any.prep, "visionzip:retention=0.3", max_new_tokens=3)
    assert torch.equal(a.stages[0].kept_ids, b.stages[0].kept_ids) and a.tokens == b.tokens


def test_chain_visionzip_then_fastv_sees_only_what_visionzip_kept(tiny_any):
    res = tiny_any.engine.run(tiny_any.prep, "visionzip:retention=0.5+fastv:layer=2,retention=0.25",
                              max_new_tokens=1)
    first, second = res.stages[0].kept_ids, res.stages[1].kept_ids
    assert bool(torch.isin(second, first).all())
    assert second.numel() == budget(0.25, tiny_any.prep.layout.num_tokens)


def test_qwen25_pool_to_tokens_returns_layout_order():
    from tiny_models import random_video, tiny_adapter
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import get_vision_window_index
    ad = tiny_adapter("qwen25")
    enc = ad.encode_video(random_video(4, 32, seed=1))
    vit = ad.model.model.visual
    window_index, _ = get_vision_window_index(enc.grid_thw, spatial_merge_size=vit.spatial_merge_size,
                                              window_size=vit.window_size, patch_size=vit.patch_size)
    s = enc.vision.layer_input.shape[0]
    pooled = enc.vision.pool_to_tokens(torch.arange(s, dtype=torch.float32))
    # layout token j = merge unit j, which the ViT holds at window position argsort(window_index)[j]
    expected = 4 * torch.argsort(window_index).float() + 1.5
    assert torch.equal(pooled, expected)


# ---------------------------------------------------------------- real SigLIP geometry (384 px, patch 14)

def test_dominant_tokens_are_the_most_attention_receiving_on_a_real_geometry_siglip():
    """LLaVA-OneVision's SigLIP geometry (384 px / patch 14 = 27×27 patches, bilinear to 14×14 tokens) on
    a narrow 2-layer tower: with dominant tokens only, VisionZip keeps per frame exactly the tokens
    whose attention RECEIVED (eager weights of the used layer, mean over heads and queries, resized
    like the features) is highest."""
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, Qwen2Config, SiglipVisionConfig

    from pruning_core.engine import Engine
    from pruning_core.loader import wrap
    from tiny_models import random_video, tiny_tokenizer
    tok = tiny_tokenizer()
    torch.manual_seed(3)
    text = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                       tie_word_embeddings=False)
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                image_size=384, patch_size=14)
    cfg = LlavaOnevisionConfig(vision_config=vision, text_config=text, vision_feature_layer=-1,
                               vision_feature_select_strategy="full",
                               video_token_index=tok.convert_tokens_to_ids("<video>"),
                               image_token_index=tok.convert_tokens_to_ids("<image>"))
    cfg._attn_implementation = "sdpa"
    eng = Engine(wrap(LlavaOnevisionForConditionalGeneration(cfg).eval(), tok, name="siglip-384-14"))
    prep = eng.prepare(random_video(1, 384, seed=5), "what colour is the circle ?")
    layout = prep.layout
    assert (layout.grid_h, layout.grid_w) == (14, 14)

    acc = prep.encoding.vision
    layer = acc.layer
    vcfg = eng.adapter.model.config.vision_config
    prev, vcfg._attn_implementation = vcfg._attn_implementation, "eager"
    try:
        with torch.no_grad():
            _, weights = layer.self_attn(layer.layer_norm1(acc.layer_input))
    finally:
        vcfg._attn_implementation = prev
    received = weights.float().mean(dim=(1, 2))                                   # [F, 729]
    assert received.shape == (1, 27 * 27)
    ref = torch.nn.functional.interpolate(received.view(1, 1, 27, 27), size=(14, 14), mode="bilinear").view(196)

    res = eng.run(prep, "visionzip:retention=0.25,dominant_ratio=1.0", max_new_tokens=1)
    kept = res.stages[0].kept_ids
    assert kept.numel() == 49
    assert set(kept.tolist()) == set(torch.topk(ref, 49).indices.tolist())
