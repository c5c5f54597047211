"""ShaRP RegD: our batched implementation vs a straightforward per-token loop of the same three steps.

Both run on the same inputs (video-like token features, segments from eq. 3, top-K of random
scores) and must give the same kept set, the same merge groups and the same merged values; the
JSON reports both timings and their ratio (absolute timings on this shared machine are noisy).

    python bench/sharp_regd.py                         # 8 frames x 196 tokens, d=896, 15% kept
    python bench/sharp_regd.py --frames 4 --dim 64     # seconds
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
sys.path.insert(0, os.path.join(ROOT, "tests"))

from pruning_core.methods import sharp_ops as ops  # noqa: E402
from pruning_core.tokens import budget, topk_ordered  # noqa: E402
from sharp_reference import regd_reference  # noqa: E402


def video_features(frames: int, grid: int, dim: int, seed: int, cut_every: int = 3, block: int = 5) -> torch.Tensor:
    """Token features with the structure RegD meets in a video: scenes (a cut every ``cut_every``
    frames) that drift slowly, spatially coherent regions (``block``x``block`` patches share a
    drifting prototype, 20% of patches take a random one) and per-token noise of varying strength."""
    g = torch.Generator().manual_seed(seed)
    per = grid * grid
    rows, cols = torch.arange(per) // grid, torch.arange(per) % grid
    side = (grid + block - 1) // block
    region = (rows // block) * side + cols // block
    out = []
    scene, protos = torch.randn(dim, generator=g), torch.randn(side * side, dim, generator=g)
    for f in range(frames):
        if f and f % cut_every == 0:
            scene, protos = torch.randn(dim, generator=g), torch.randn(side * side, dim, generator=g)
        scene = scene + 0.15 * torch.randn(dim, generator=g)
        protos = protos + 0.2 * torch.randn(side * side, dim, generator=g)
        stray = torch.rand(per, generator=g) < 0.2
        which = torch.where(stray, torch.randint(0, side * side, (per,), generator=g), region)
        noise = 0.3 + 1.2 * torch.rand(per, 1, generator=g)
        out.append(0.8 * scene + protos[which] + noise * torch.randn(per, dim, generator=g))
    return torch.cat(out)


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    per_frame = args.grid * args.grid
    n = args.frames * per_frame
    x = video_features(args.frames, args.grid, args.dim, args.seed)
    frame = torch.arange(n) // per_frame
    seg, _ = ops.token_segments(x, frame, args.frames, args.tau_seg)
    score = torch.rand(n, generator=torch.Generator().manual_seed(args.seed + 1))
    k = budget(args.retention, n)
    reg = topk_ordered(score, k)
    taus = (args.tau_filter, args.tau_merge, args.tau_cluster, args.beta)

    ours_ms, steps = [], []
    for _ in range(args.repeats + 1):           # the first call warms up kernels and allocations
        times: dict = {}
        t0 = time.perf_counter()
        out = ops.regd(x, seg, reg, score, *taus, times=times)
        ours_ms.append((time.perf_counter() - t0) * 1000.0)
        steps.append(times)
    ours_ms, steps = ours_ms[1:], steps[1:]

    t0 = time.perf_counter()
    kept, owner = regd_reference(x, seg.tolist(), reg.tolist(), score.tolist(), *taus)
    ref_ms = (time.perf_counter() - t0) * 1000.0

    owner_t = torch.tensor(owner)
    ours_owner = torch.where(out.target >= 0, out.keep[out.target.clamp_min(0)], out.target)
    ref_values = torch.stack([x[owner_t == t].float().mean(0) for t in kept]) if kept else x.new_zeros(0, args.dim)
    med = sorted(ours_ms)[len(ours_ms) // 2]
    step_med = {key: round(sorted(s[key] for s in steps)[len(steps) // 2], 3) for key in steps[0]}
    return {
        "bench": "sharp_regd", "tokens": n, "frames": args.frames, "dim": args.dim, "segments": int(seg.max()) + 1,
        "registers": k, "threads": args.threads, "repeats": args.repeats,
        "same_kept_set": out.keep.tolist() == kept,
        "same_merge_groups": bool(torch.equal(ours_owner, owner_t)),
        "max_value_diff": float((out.values - ref_values).abs().max()) if kept else 0.0,
        "ours_ms": round(med, 3), "ours_steps_ms": step_med, "reference_ms": round(ref_ms, 1),
        "speedup": round(ref_ms / med, 1) if med else None,
        "regd_info": out.info,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--grid", type=int, default=14, help="tokens per frame side (LLaVA-OV: 14)")
    ap.add_argument("--dim", type=int, default=896, help="hidden size (qwen2-0.5b: 896)")
    ap.add_argument("--retention", type=float, default=0.15)
    ap.add_argument("--tau-seg", type=float, default=0.9)
    ap.add_argument("--tau-filter", type=float, default=0.7)
    ap.add_argument("--tau-merge", type=float, default=0.8)
    ap.add_argument("--tau-cluster", type=float, default=0.4)
    ap.add_argument("--beta", type=float, default=0.008)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    print(json.dumps(run(ap.parse_args(argv))))


if __name__ == "__main__":
    main()
