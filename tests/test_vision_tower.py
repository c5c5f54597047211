"""The lean vision towers (pruning_core.vision_tower) give the stock transformers towers' features.

Tiny configs of the real architectures (SigLIP in LLaVA-OneVision, the Qwen2-VL and Qwen2.5-VL ViTs),
compared with the model's own ``get_video_features`` called as its forward calls it (all frames at once).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pruning_core import checkpoints
from pruning_core.vision_tower import qwen_tower, segment_attention, siglip_tower
from tiny_models import random_video, tiny_adapter

ATOL = 1e-5


def _stock_llava(ad, pv):
    cfg = ad.model.config
    return ad.model.model.get_video_features(pixel_values_videos=pv, vision_feature_layer=cfg.vision_feature_layer,
                                             vision_feature_select_strategy=cfg.vision_feature_select_strategy
                                             ).pooler_output[0]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_llava_lean_features_equal_stock_get_video_features(attn):
    ad = tiny_adapter("llava", attn)
    assert ad.lean_tower()
    pv = ad.pixel_values(random_video(5, 32, seed=3))
    with torch.no_grad():
        ours, _ = ad.video_features(pv)
        stock = _stock_llava(ad, pv)
    assert ours.shape == stock.shape == (5 * ad.token_grid ** 2 + 1, ad.info.hidden_size)
    torch.testing.assert_close(ours, stock, atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("layer,strategy", [(-2, "full"), (1, "default")])
def test_llava_lean_tower_stops_at_the_feature_layer(layer, strategy):
    ad = tiny_adapter("llava")
    ad.model.config.vision_feature_layer, ad.model.config.vision_feature_select_strategy = layer, strategy
    pv = ad.pixel_values(random_video(3, 32, seed=4))
    ran = []
    handles = [lay.register_forward_pre_hook(lambda m, a: ran.append(m)) for lay in
               ad.model.model.vision_tower.encoder.layers]
    with torch.no_grad():
        out = siglip_tower(ad.model.model.vision_tower, pv[0], layer)
    for h in handles:
        h.remove()
    assert not ran  # our layer function, not the modules' forward
    with torch.no_grad():
        stock = ad.model.model.vision_tower(pv[0], output_hidden_states=True).hidden_states[layer]
    torch.testing.assert_close(out.features, stock, atol=ATOL, rtol=1e-5)
    if strategy == "default":  # the pooled-token count of a dropped first patch
        with torch.no_grad():
            with pytest.raises(RuntimeError):  # 63 patches do not pool as an 8x8 grid, in stock code as in ours
                _stock_llava(ad, pv)
            with pytest.raises(RuntimeError):
                ad.video_features(pv)


def test_llava_capture_equals_the_stock_hook_and_projection_recorder():
    ad = tiny_adapter("llava")
    frames = random_video(4, 32, seed=5)
    enc = ad.encode_video(frames)
    pv = ad.pixel_values(frames)
    seen = []
    layer = ad._feature_layer_module()
    h = layer.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    q = layer.self_attn.q_proj.register_forward_hook(lambda m, a, o: seen.append(o))
    with torch.no_grad():
        _stock_llava(ad, pv)
    h.remove()
    q.remove()
    torch.testing.assert_close(enc.vision.layer_input, seen[0], atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(enc.vision.qk[0], seen[1], atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("kind", ["qwen2", "qwen25"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_qwen_lean_tower_equals_stock_get_video_features(kind, attn):
    ad = tiny_adapter(kind, attn)
    ad.max_pixels = 56 * 56  # 40x56 px: 5x7 merge units, so Qwen2.5-VL's 2x2-unit windows take three sizes
    pv, grid = ad.pixel_values(random_video(5, 56, seed=6)[:, :40])
    assert grid.tolist() == [[3, 10, 14]]
    visual = ad.model.model.visual
    with torch.no_grad():
        ours = qwen_tower(visual, pv, grid).features
        stock = torch.cat(list(ad.model.model.get_video_features(pv, grid).pooler_output), 0)
    assert ours.shape == stock.shape
    torch.testing.assert_close(ours, stock, atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("kind", ["qwen2", "qwen25"])
def test_qwen_capture_equals_the_stock_last_block_call(kind):
    ad = tiny_adapter(kind)
    frames = random_video(4, 32, seed=7)
    enc = ad.encode_video(frames)
    pv, grid = ad.pixel_values(frames)
    seen = {}

    def hook(_m, args, kwargs):
        seen["input"], seen["kwargs"] = args[0], kwargs
    h = ad._last_block().register_forward_pre_hook(hook, with_kwargs=True)
    with torch.no_grad():
        ad.model.model.get_video_features(pv, grid)
    h.remove()
    torch.testing.assert_close(enc.vision.layer_input, seen["input"], atol=ATOL, rtol=1e-5)
    assert enc.vision.layer_kwargs["cu_seqlens"].tolist() == seen["kwargs"]["cu_seqlens"].tolist()
    for ours, stock in zip(enc.vision.layer_kwargs["position_embeddings"], seen["kwargs"]["position_embeddings"]):
        torch.testing.assert_close(ours, stock)
    assert enc.vision.qk is not None and enc.vision.qk[0].shape == seen["input"].shape


def test_segment_attention_equals_one_sdpa_call_per_segment():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(23, 3, 8, generator=g) for _ in range(3))
    cu = torch.tensor([0, 4, 8, 8, 10, 14, 23])  # lengths 4, 4, 0, 2, 4, 9
    out = segment_attention(q, k, v, cu, 0.3)
    bounds = cu.tolist()
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b > a:
            ref = F.scaled_dot_product_attention(*(t[a:b].transpose(0, 1) for t in (q, k, v)), scale=0.3)
            torch.testing.assert_close(out[a:b], ref.transpose(0, 1), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kind", ["llava", "qwen2"])
def test_encode_reports_progress_and_stops_between_layers(kind):
    ad = tiny_adapter(kind)
    seen = []
    with checkpoints.watching(progress=lambda phase, done, total: seen.append((phase, done, total))):
        ad.encode_video(random_video(4, 32))
    seen = [s for s in seen if s[0] == "encoding frames"]
    assert seen and all(t == 4 for _, _, t in seen)
    assert [d for _, d, _ in seen] == sorted(d for _, d, _ in seen) and seen[-1][1] == 4
    with checkpoints.watching(interrupt=lambda: True), pytest.raises(checkpoints.Interrupted):
        ad.encode_video(random_video(4, 32))
