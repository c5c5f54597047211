"""Feather's RoPE-free score row: un-rotating the keys already in the cache vs re-projecting them.

Feather's code recomputes k = k_proj(norm(h)) without RoPE for every token of layer K-1. The
engine already holds layer K-1's rotated keys, so we un-rotate them (one multiply-add per
element) instead. Both must give the same scores; the JSON reports both timings and the
ratio on one Qwen2 decoder layer of the given size (random weights: timing depends on shapes).

    python bench/feather_scores.py                       # Qwen2-0.5B layer, 8 x 196 visual tokens
    python bench/feather_scores.py --dims tiny --frames 4
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from common import timed  # noqa: E402  (bench/ is on sys.path when run as a script)

from pruning_core.attention import (apply_rope, derotated_cache_scores, layer_keys,  # noqa: E402
                                                   layer_query, row_attention)

DIMS = {
    "qwen2-0.5b": dict(hidden_size=896, intermediate_size=4864, num_attention_heads=14, num_key_value_heads=2),
    "qwen2-7b": dict(hidden_size=3584, intermediate_size=18944, num_attention_heads=28, num_key_value_heads=4),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2),
}


@torch.no_grad()
def run(args) -> dict:
    from transformers import Qwen2Config
    from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer, Qwen2RotaryEmbedding
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = Qwen2Config(num_hidden_layers=1, max_position_embeddings=65536, **DIMS[args.dims])
    cfg._attn_implementation = "sdpa"
    layer = Qwen2DecoderLayer(cfg, 0).eval()
    rot = Qwen2RotaryEmbedding(cfg)
    n_text = 40
    n_vis = args.frames * args.grid * args.grid
    L = n_text + n_vis
    h = torch.randn(1, L, cfg.hidden_size)
    cos, sin = rot(h, torch.arange(L).unsqueeze(0))
    vis = torch.arange(20, 20 + n_vis)
    # what the cache holds after layer K-1 ran: rotated keys of every token
    cached = apply_rope(layer_keys(layer, h[0]), cos[0], sin[0])           # [KVH, L, hd]
    x_last = h[0, -1]

    def ours():
        return derotated_cache_scores(layer, x_last, cached[:, vis], cos[0, vis], sin[0, vis])

    def reproject():
        q = layer_query(layer, x_last)
        k = layer_keys(layer, h[0])[:, vis]
        return row_attention(q, k, layer.self_attn.scaling).mean(0)

    a, ms = timed(ours, args.repeats, "min")
    b, ref_ms = timed(reproject, args.repeats, "min")
    return {
        "bench": "feather_scores", "dims": args.dims, "visual_tokens": n_vis, "sequence_tokens": L,
        "max_abs_diff": float((a - b).abs().max()), "same_top25pct": bool(
            torch.equal(torch.topk(a, n_vis // 4).indices.sort().values, torch.topk(b, n_vis // 4).indices.sort().values)),
        "derotate_cache_ms": round(ms, 3), "reproject_ms": round(ref_ms, 3),
        "speed_ratio": round(ref_ms / ms, 2) if ms else None,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", default="qwen2-0.5b", choices=sorted(DIMS))
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--grid", type=int, default=14)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    print(json.dumps(run(ap.parse_args(argv))))


if __name__ == "__main__":
    main()
