"""HieraVid DPP: our fast greedy MAP (incremental Cholesky, O(n·k²)) vs the straightforward O(n·k³) greedy.

Both select from the same relevance-weighted kernel L̃ = diag(r)·(H·Hᵀ/d)·diag(r) (HieraVid eq. 9) of
synthetic visual tokens at LM width. The reference re-solves L_S for every step (Schur complement
of every candidate); ours keeps the Cholesky rows and updates the gains (Chen et al. 2018), and
never forms the n×n kernel (rows on demand). Prints JSON per size: same selection?, median times,
speed ratio; then the per-segment selection of a whole video at 30/20/10% (ours only).

    OMP_NUM_THREADS=1 python bench/dpp.py [--dim 896] [--repeats 3]
Absolute timings on a shared CPU are noisy: read the ratios.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from common import median, timed

from pruning_core.dpp import greedy_map_lowrank, greedy_map_reference  # noqa: E402
from pruning_core.methods import hieravid_ops as ops  # noqa: E402


def _tokens(n: int, d: int, seed: int, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g, dtype=dtype)
    q = torch.randn(d, generator=g, dtype=dtype)
    return h, ops.relevance(q, h).to(dtype)


def compare(n: int, k: int, d: int, repeats: int, seed: int = 0) -> dict:
    """Both start from the same features F (L̃ = F·Fᵀ); each timing includes forming its kernel."""
    h, r = _tokens(n, d, seed)
    feats = ops.dpp_features(h, r).double()
    ref, ref_ms = timed(lambda: greedy_map_reference(feats @ feats.T, k), repeats)
    fast, fast_ms = timed(lambda: greedy_map_lowrank(feats, k), repeats)
    rows, rows_ms = timed(lambda: greedy_map_lowrank(feats, k, max_kernel_entries=0), repeats)
    return {"n": n, "k": k, "d": d, "same_selection": fast.tolist() == ref.tolist() == rows.tolist(),
            "reference_ms": round(ref_ms, 2), "fast_ms": round(fast_ms, 2), "fast_rows_on_demand_ms": round(rows_ms, 2),
            "speedup": round(ref_ms / fast_ms, 2), "speedup_rows_on_demand": round(ref_ms / rows_ms, 2)}


def video(frames: int, d: int, retention: float, repeats: int, seed: int = 1) -> dict:
    """One pre-LLM HieraVid selection over a whole video: segments of 2-4 frames, float32."""
    n = frames * 196
    h, r = _tokens(n, d, seed, torch.float32)
    frame = torch.arange(n) // 196
    seg = torch.div(frame, 3, rounding_mode="floor")
    n_seg = int(seg.max()) + 1
    sizes = torch.bincount(seg)
    k_total = round(retention * n)
    k_seg = ops.segment_budgets(torch.full((n_seg,), retention, dtype=torch.float64), sizes, k_total)
    keep, ms = timed(lambda: ops.dpp_select(h, r, seg, k_seg), repeats)
    return {"frames": frames, "tokens": n, "segments": n_seg, "retention": retention, "kept": int(keep.numel()),
            "dpp_ms": round(ms, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=896)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--frames", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [(196, 59), (588, 59), (588, 176), (1568, 157), (1568, 314)]
    out = {"compare": [compare(n, k, args.dim, args.repeats) for n, k in sizes],
           "video": [video(args.frames, args.dim, r, args.repeats) for r in (0.3, 0.2, 0.1)]}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
