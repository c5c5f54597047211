"""DyCoke TTM: our batched selection vs a straightforward window-by-window loop.

The reference follows the authors' procedure literally (per pair of frames, then per window's
frame 0 -> frame 2, torch.topk of the least similar tokens), written here for checking only; it
differs from the authors' code where we fixed its edge cases (see docs/methods/dycoke.md), which
synthetic inputs of a multiple of 4 frames do not reach. Prints JSON: same kept set?, time ratio.

    OMP_NUM_THREADS=1 python bench/dycoke_ttm.py [--frames 32] [--dim 896] [--repeats 5]
Absolute timings on a shared CPU are noisy: read the ratios.
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from common import median

from pruning_core.layout import TokenLayout  # noqa: E402
from pruning_core.methods.dycoke import ttm_select  # noqa: E402


def reference_ttm(x: torch.Tensor, frames: int, tokens: int, k: float) -> torch.Tensor:
    """Kept original ids, one frame pair at a time."""
    v = x.view(frames, tokens, -1)
    n_keep = int((1 - k) * tokens)
    kept = {f: torch.arange(tokens) for f in range(frames)}
    for w in range(0, frames, 4):
        for f, ref in ((w + 1, w), (w + 2, w), (w + 3, w + 2)):
            if f < frames:
                sim = F.cosine_similarity(v[f], v[ref], dim=1)
                kept[f] = torch.topk(sim, n_keep, largest=False).indices
    return torch.cat([torch.sort(kept[f]).values + f * tokens for f in range(frames)])


def synthetic(frames: int, dim: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(196, dim, generator=g)
    out = []
    for _ in range(frames):
        base = base + 0.3 * torch.randn(196, dim, generator=g)
        out.append(base.clone())
    return torch.cat(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--dim", type=int, default=896)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = synthetic(args.frames, args.dim)
    layout = TokenLayout(args.frames, 14, 14)
    ids = torch.arange(layout.num_tokens)
    rows = []
    for k in (0.5, 0.7):
        t_ours, t_ref = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            keep, _ = ttm_select(x, ids, layout, k)
            t_ours.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            ref = reference_ttm(x, args.frames, 196, k)
            t_ref.append((time.perf_counter() - t0) * 1000)
        rows.append({"k": k, "kept": int(keep.numel()), "retention": round(keep.numel() / layout.num_tokens, 4),
                     "same_kept": bool(torch.equal(ids[keep], ref)),
                     "ours_ms": round(median(t_ours), 2), "reference_ms": round(median(t_ref), 2),
                     "speedup": round(median(t_ref) / max(median(t_ours), 1e-9), 2)})
    print(json.dumps({"bench": "dycoke_ttm", "frames": args.frames, "tokens": layout.num_tokens, "dim": args.dim,
                      "threads": args.threads, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
