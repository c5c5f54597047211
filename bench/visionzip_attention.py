"""VisionZip's vision attention: one-layer recompute on an SDPA tower vs an eager tower with attentions.

The straightforward way to get "attention each patch receives" is to run the SigLIP tower in
eager mode with ``output_attentions=True`` (every layer materialises [F, H, P, P]). Ours runs the
tower as loaded (SDPA), records the q/k projections of the layer the LLM uses as the tower computes
them and computes only that layer's attention statistic, frame by frame, in query chunks. Prints JSON: max abs difference of the
received attention, time and peak tensor memory of each path, and their ratios.

    OMP_NUM_THREADS=1 python bench/visionzip_attention.py [--frames 4] [--hidden 384] [--layers 4]
SigLIP geometry as LLaVA-OneVision (384 px, patch 14: 729 patches per frame), narrower and
shallower so it runs on a shared CPU; absolute timings are noisy: read the ratios.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from common import PeakTensorMemory, median

from pruning_core.adapters.base import VisionAccess  # noqa: E402
from pruning_core.layout import TokenLayout  # noqa: E402
from pruning_core.methods.visionzip import visionzip_select  # noqa: E402
from pruning_core.tokens import allocate_proportional, budget  # noqa: E402
from pruning_core.vision_attention import ProjectionRecorder, patch_attention  # noqa: E402


def selection_ms(frames: int, dim: int, repeats: int) -> list[dict]:
    """Dominant + contextual selection alone on frames x 196 LM-width tokens (LLaVA-OV layout)."""
    g = torch.Generator().manual_seed(2)
    layout = TokenLayout(frames, 14, 14)
    n = layout.num_tokens
    emb, att, keys = torch.randn(n, dim, generator=g), torch.rand(n, generator=g), torch.randn(n, 72, generator=g)
    groups = layout.frame_of(torch.arange(n))
    rows = []
    for retention in (0.25, 0.15, 0.10):
        k_g = allocate_proportional(torch.ones(frames), torch.full((frames,), 196), budget(retention, n))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            keep, _, info = visionzip_select(emb, att, keys, groups, k_g, 54 / 64)
            times.append((time.perf_counter() - t0) * 1000)
        rows.append({"retention": retention, "kept": int(keep.numel()), "dominant": info["dominant"],
                     "contextual": info["contextual"], "select_ms": round(median(times), 2)})
    return rows


def build(hidden: int, layers: int, heads: int, attn: str):
    from transformers import SiglipVisionConfig, SiglipVisionModel
    cfg = SiglipVisionConfig(hidden_size=hidden, intermediate_size=hidden * 4, num_hidden_layers=layers,
                             num_attention_heads=heads, image_size=384, patch_size=14)
    cfg._attn_implementation = attn
    torch.manual_seed(0)
    return SiglipVisionModel(cfg).eval()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--select-frames", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sdpa = build(args.hidden, args.layers, args.heads, "sdpa")
    eager = build(args.hidden, args.layers, args.heads, "eager")
    eager.load_state_dict(sdpa.state_dict())
    pixels = torch.randn(args.frames, 3, 384, 384, generator=torch.Generator().manual_seed(1))
    layer = sdpa.vision_model.encoder.layers[-1] if hasattr(sdpa, "vision_model") else sdpa.encoder.layers[-1]
    captured = {}
    layer.register_forward_pre_hook(lambda m, a: captured.__setitem__("x", a[0]))

    @torch.no_grad()
    def ours():
        with ProjectionRecorder(layer) as rec:   # as the adapters encode: the layer's q/k are kept
            sdpa(pixel_values=pixels)
        acc = VisionAccess("llava_onevision", layer, captured["x"], {}, 729, lambda v: v, qk=rec.qk())
        return patch_attention(acc)[0]

    @torch.no_grad()
    def reference():
        out = eager(pixel_values=pixels, output_attentions=True)
        return out.attentions[-1].mean(dim=(1, 2)).reshape(-1)

    @torch.no_grad()
    def tower_only():
        return sdpa(pixel_values=pixels).last_hidden_state

    t = {"ours": [], "reference": [], "tower_only": []}
    for _ in range(args.repeats):
        for name, fn in (("ours", ours), ("reference", reference), ("tower_only", tower_only)):
            t0 = time.perf_counter()
            fn()
            t[name].append((time.perf_counter() - t0) * 1000)
    with PeakTensorMemory() as m_ours:
        a = ours()
    with PeakTensorMemory() as m_ref:
        b = reference()
    ms = {k: median(v) for k, v in t.items()}
    print(json.dumps({
        "bench": "visionzip_attention", "frames": args.frames, "patches_per_frame": 729, "hidden": args.hidden,
        "layers": args.layers, "heads": args.heads, "threads": args.threads,
        "max_abs_diff": float((a - b).abs().max()),
        "ours_ms": round(ms["ours"], 1), "reference_ms": round(ms["reference"], 1),
        "tower_only_ms": round(ms["tower_only"], 1),
        "recompute_overhead_ms": round(ms["ours"] - ms["tower_only"], 1),
        "speedup": round(ms["reference"] / max(ms["ours"], 1e-9), 2),
        "ours_peak_mb": round(m_ours.peak / 2**20, 1), "reference_peak_mb": round(m_ref.peak / 2**20, 1),
        "memory_ratio": round(m_ref.peak / max(m_ours.peak, 1), 2),
        "selection": {"tokens": args.select_frames * 196, "dim": 896,
                      "rows": selection_ms(args.select_frames, 896, max(3, args.repeats))},
    }, indent=1))


if __name__ == "__main__":
    main()
