"""DivPrune: our running-minimum greedy MMDP vs the authors' full-matrix formulation.

Both run on the same synthetic video embeddings (frames x 196 tokens, LM width). The reference
builds the n x n cosine-distance matrix and, at every step, re-reduces the rows of the whole
chosen set (as in vbdi/divprune); ours keeps one running min-distance vector (one mat-vec per
step). Prints JSON: same picks?, time ratio, peak tensor memory of each.

    OMP_NUM_THREADS=1 python bench/divprune_mmdp.py [--frames 8] [--dim 896] [--repeats 3]
Absolute timings on a shared CPU are noisy: read the ratios.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from common import PeakTensorMemory, median, timed

from pruning_core.methods.divprune import mmdp_greedy  # noqa: E402
from pruning_core.tokens import budget, normalize  # noqa: E402


def reference_mmdp(x: torch.Tensor, k: int) -> torch.Tensor:
    """Straightforward DivPrune: full distance matrix, min over all chosen rows at each step."""
    xn = normalize(x)
    dist = 1.0 - xn @ xn.T
    chosen = torch.empty(k, dtype=torch.long)
    for i in range(k):
        if i == 0:
            score = torch.topk(dist, 2, dim=0, largest=False).values[1]
        else:
            score = dist.index_select(0, chosen[:i]).min(dim=0).values
            score[chosen[:i]] = float("-inf")
        chosen[i] = score.argmax()
    return chosen


def synthetic(frames: int, dim: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(196, dim, generator=g)
    out = []
    for _ in range(frames):
        base = 0.8 * base + 0.6 * torch.randn(196, dim, generator=g)
        out.append(base.clone())
    return torch.cat(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--dim", type=int, default=896)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = synthetic(args.frames, args.dim)
    n = x.shape[0]
    rows = []
    for retention in (0.098, 0.25):
        k = budget(retention, n)
        ours, t_ours = timed(lambda: mmdp_greedy(x, k)[0], args.repeats)
        ref, t_ref = timed(lambda: reference_mmdp(x, k), args.repeats)
        with PeakTensorMemory() as m_ours:
            mmdp_greedy(x, k)
        with PeakTensorMemory() as m_ref:
            reference_mmdp(x, k)
        rows.append({"retention": retention, "k": k, "same_picks": bool(torch.equal(ours, ref)),
                     "ours_ms": round(t_ours, 1), "reference_ms": round(t_ref, 1),
                     "speedup": round(t_ref / max(t_ours, 1e-9), 2),
                     "ours_peak_mb": round(m_ours.peak / 2**20, 2), "reference_peak_mb": round(m_ref.peak / 2**20, 2)})
    print(json.dumps({"bench": "divprune_mmdp", "tokens": n, "dim": args.dim, "threads": args.threads,
                      "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
