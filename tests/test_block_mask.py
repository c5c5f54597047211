"""block_mask: ShaRP's SegM mask held as causal blocks gives the dense-mask attention."""
from __future__ import annotations

import pytest
import torch

from pruning_core.block_mask import SegmentCausal, blocks_attention, segment_causal
from pruning_core.methods import sharp_ops as ops
from pruning_core.methods.sharp import SharpStage


def _seg(n: int, cuts: list[int]) -> torch.Tensor:
    seg = torch.zeros(n, dtype=torch.long)
    for c in cuts:
        seg[c:] += 1
    return seg


@pytest.mark.parametrize("lo,n,tail,cuts", [(3, 10, 4, [4, 7]), (0, 6, 0, [2]), (2, 5, 3, []), (1, 4, 2, [1, 2, 3])])
def test_dense_form_is_eq4s_mask(lo, n, tail, cuts):
    seg = _seg(n, cuts)
    length = lo + n + tail
    got = segment_causal(length, lo, seg)
    assert got.shape == (length, length)
    assert torch.equal(got.dense(), ops.segment_mask(length, torch.arange(lo, lo + n), seg))


def test_a_video_of_one_segment_is_one_causal_block_plus_the_tail():
    assert segment_causal(9, 2, torch.zeros(5, dtype=torch.long)).bounds == (2, 7)


def test_layer_under_blocks_equals_layer_under_the_dense_mask(tiny_llava):
    """One real decoder layer (GQA, SDPA): block-wise attention = SDPA with the dense [L, L] mask."""
    ad, prep = tiny_llava.adapter, tiny_llava.prep
    length = int(prep.input_ids.shape[1])
    vis = prep.vis_pos
    mask = segment_causal(length, int(vis[0]), _seg(vis.numel(), [vis.numel() // 3, vis.numel() // 2]))
    assert len(mask.bounds) == 4 and int(vis[-1]) + 1 < length      # prompt, 3 segments, text after
    h = prep.embeds
    cos, sin = ad.rotary_emb(h, prep.position_ids)
    layer = ad.layers[0]
    dense = layer(h, attention_mask=mask.dense().view(1, 1, length, length), position_embeddings=(cos, sin))
    with blocks_attention(ad, mask):
        blocked = layer(h, attention_mask=None, position_embeddings=(cos, sin))
    assert ad.model.config.get_text_config()._attn_implementation == "sdpa"   # restored
    dense, blocked = (o[0] if isinstance(o, tuple) else o for o in (dense, blocked))
    torch.testing.assert_close(blocked, dense, rtol=1e-5, atol=1e-5)
    plain = layer(h, attention_mask=None, position_embeddings=(cos, sin))
    plain = plain[0] if isinstance(plain, tuple) else plain
    assert not torch.allclose(plain, dense, atol=1e-4)                       # the mask matters here


def test_sharp_run_with_blocks_equals_the_run_with_the_dense_mask(tiny_any, monkeypatch):
    plan = "sharp:retention=0.25,tau_seg=0.99,layer=2"
    eng, prep = tiny_any.engine, tiny_any.prep
    blocked = eng.run(prep, plan, max_new_tokens=3, collect_logits=True)
    early = SharpStage.early_mask

    def dense(self, state):
        m = early(self, state)
        return m.dense() if isinstance(m, SegmentCausal) else m
    monkeypatch.setattr(SharpStage, "early_mask", dense)
    ref = eng.run(prep, plan, max_new_tokens=3, collect_logits=True)
    assert blocked.stages[0].info["segments"] > 1
    assert torch.equal(blocked.stages[0].kept_ids, ref.stages[0].kept_ids)
    assert blocked.tokens == ref.tokens
    torch.testing.assert_close(blocked.logits, ref.logits, rtol=1e-4, atol=1e-4)


def test_segm_mask_bench_reports_equal_outputs(capsys):
    import importlib.util
    import json
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    import sys
    sys.path.insert(0, str(repo / "bench"))
    spec = importlib.util.spec_from_file_location("bench_segm_mask", repo / "bench" / "segm_mask.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(["--quick", "--repeats", "1"])
    out = json.loads(capsys.readouterr().out)
    assert out["segments"] > 1 and out["max_abs_diff"] < 1e-5
    assert set(out["cpu_ms_runs"]) == {"dense", "blocks", "causal"}
