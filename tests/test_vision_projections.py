"""The vision layer's q/k projections are recorded during the encode, not recomputed, and nothing changes.

``ProjectionRecorder`` keeps what the tower's own used layer computes; ``patch_attention`` then
starts from it. Every method that reads the vision attention must select the same tokens and
produce the same merged values as with the recompute from the captured layer input.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from pruning_core.adapters.base import VisionAccess
from pruning_core.vision_attention import ProjectionRecorder, patch_attention, siglip_qk

METHOD_PLANS = ["visionzip:retention=0.25", "prumerge:retention=0.25", "prumerge", "prumerge_plus",
                "holitom:retention=0.3"]


def _without_projections(prep):
    enc = prep.encoding
    return dataclasses.replace(prep, encoding=dataclasses.replace(enc, vision=dataclasses.replace(enc.vision, qk=None)))


def _siglip_layer():
    from transformers import SiglipVisionConfig
    from transformers.models.siglip.modeling_siglip import SiglipEncoderLayer
    cfg = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return SiglipEncoderLayer(cfg).eval()


@torch.no_grad()
def test_recorder_keeps_the_siglip_layers_own_projections_over_chunked_calls():
    layer = _siglip_layer()
    x = torch.randn(5, 9, 32, generator=torch.Generator().manual_seed(1))
    with ProjectionRecorder(layer) as rec:
        layer(x[:2], None)
        layer(x[2:], None)   # the adapter encodes a chunk of frames at a time
    q, k = rec.qk()
    h = layer.layer_norm1(x)
    assert torch.allclose(q, layer.self_attn.q_proj(h), atol=1e-6)
    assert torch.allclose(k, layer.self_attn.k_proj(h), atol=1e-6)


@torch.no_grad()
def test_recorder_removes_its_hooks_on_exit():
    layer = _siglip_layer()
    with ProjectionRecorder(layer) as rec:
        layer(torch.randn(1, 4, 32), None)
    layer(torch.randn(3, 4, 32), None)
    assert rec.qk()[0].shape == (1, 4, 32)
    assert not layer.self_attn.q_proj._forward_hooks and not layer.self_attn.k_proj._forward_hooks


def test_recorder_records_nothing_for_an_unknown_layer():
    lin = torch.nn.Linear(2, 2)
    with ProjectionRecorder(lin) as rec:
        lin(torch.zeros(1, 2))
    assert rec.qk() is None


@torch.no_grad()
def test_siglip_recorded_projections_give_the_recomputed_attention():
    layer = _siglip_layer()
    x = torch.randn(3, 16, 32, generator=torch.Generator().manual_seed(2))
    qk = (layer.self_attn.q_proj(layer.layer_norm1(x)), layer.self_attn.k_proj(layer.layer_norm1(x)))
    q0, k0, _ = siglip_qk(layer, x)
    q1, k1, _ = siglip_qk(layer, x, qk)
    assert torch.equal(q0, q1) and torch.equal(k0, k1)


def test_adapters_record_the_used_layers_projections(tiny_any):
    v = tiny_any.prep.encoding.vision
    assert v.qk is not None
    q, k = v.qk
    assert q.shape == k.shape and q.shape[:-1] == v.layer_input.shape[:-1]


@torch.no_grad()
def test_attention_from_recorded_projections_equals_the_recompute(tiny_any):
    v = tiny_any.prep.encoding.vision
    att, keys = patch_attention(v)
    att0, keys0 = patch_attention(dataclasses.replace(v, qk=None))
    assert torch.allclose(att, att0, atol=1e-6, rtol=1e-5)
    assert torch.allclose(keys, keys0, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("plan", METHOD_PLANS)
def test_methods_select_and_merge_identically_with_recorded_projections(tiny_any, plan):
    eng, prep = tiny_any.engine, tiny_any.prep
    a = eng.run(prep, plan, max_new_tokens=1, collect_logits=True)
    b = eng.run(_without_projections(prep), plan, max_new_tokens=1, collect_logits=True)
    assert [s.kept_ids.tolist() for s in a.stages] == [s.kept_ids.tolist() for s in b.stages]
    # merged values feed the prefill: equal logits within float tolerance mean equal merge weights
    assert torch.allclose(a.logits, b.logits, atol=1e-5, rtol=1e-4)


def test_bench_vision_access_records_projections():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from common import siglip_vision_access
    acc = siglip_vision_access(1, 7, patch_grid=6, hidden=32, heads=4)
    assert isinstance(acc, VisionAccess) and acc.qk is not None
    att0, _ = patch_attention(dataclasses.replace(acc, qk=None))
    assert torch.allclose(patch_attention(acc)[0], att0, atol=1e-6)
