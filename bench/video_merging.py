"""PruneVid / HoliTom components: ours (batched) vs a straightforward reference, same inputs, same result.

* DPC-KNN clustering of many groups (PruneVid: each frame's dynamic tokens and each segment's
  static tokens; HoliTom: static tokens): one padded batch (``clustering.dpc_knn``) vs a loop that
  clusters one group after another with the definition written out per group (distances, k nearest,
  density, distance to a denser token, top scores, nearest centre), same distance function.
* HoliTom's global temporal segmentation: window savings for every (s, e) from one cumulative sum
  plus the DP scan over frames with all window sizes at once (``holitom.window_savings`` and
  ``best_windows``) vs the loops of its definition (a cumulative product per start frame, then a
  double loop over frames and window sizes).

Prints JSON per size: same result?, median times, speed ratio.

    OMP_NUM_THREADS=1 python bench/video_merging.py [--dim 896] [--repeats 3]
Absolute timings on a shared CPU are noisy: read the ratios.
"""
from __future__ import annotations

import argparse
import json
import torch

from common import timed

from pruning_core.clustering import distances, dpc_knn  # noqa: E402
from pruning_core.methods.holitom import best_windows, window_savings  # noqa: E402


def dpc_reference(x: torch.Tensor, groups: torch.Tensor, n_centres: torch.Tensor, k: int) -> torch.Tensor:
    """Centre of every token, one group at a time (ties: the earlier token is denser, as ours)."""
    centre = torch.full((x.shape[0],), -1, dtype=torch.long)
    for g in range(n_centres.numel()):
        rows = (groups == g).nonzero().squeeze(1)
        m = rows.numel()
        if m == 0 or int(n_centres[g]) == 0:
            continue
        xs = x[rows].float()
        d = distances(xs, xs)
        kk = min(k, m)
        rho = torch.exp(-(torch.sort(d, dim=1).values[:, :kk] ** 2).mean(1))
        idx = torch.arange(m)
        denser = (rho.view(1, -1) > rho.view(-1, 1)) | ((rho.view(1, -1) == rho.view(-1, 1)) & (idx.view(1, -1) < idx.view(-1, 1)))
        delta = torch.where(denser, d, torch.full_like(d, float("inf"))).min(1).values
        delta = torch.where(torch.isfinite(delta), delta, d.max())
        order = torch.sort(delta * rho, descending=True, stable=True).indices
        cen = order[: int(n_centres[g])]
        near = cen[d[:, cen].argmin(1)]
        near[cen] = cen
        centre[rows] = rows[near]
    return centre


def compare_dpc(frames: int, per_frame: int, d: int, ratio: float, repeats: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(frames * per_frame, d, generator=g)
    groups = torch.arange(frames).repeat_interleave(per_frame)
    n_c = torch.full((frames,), int(per_frame * ratio))
    ref, ref_ms = timed(lambda: dpc_reference(x, groups, n_c, 7), repeats)
    (_, ours), ours_ms = timed(lambda: dpc_knn(x, groups, n_c, k=7), repeats)
    return {"groups": frames, "tokens_per_group": per_frame, "d": d, "centres_per_group": int(n_c[0]),
            "same_result": bool(torch.equal(ref, ours)), "reference_ms": round(ref_ms, 2), "ours_ms": round(ours_ms, 2),
            "speedup": round(ref_ms / ours_ms, 2)}


def savings_reference(sim: torch.Tensor, tau: float) -> torch.Tensor:
    n = sim.shape[0] + 1
    out = torch.zeros(n, n, dtype=torch.long)
    for s in range(n - 1):
        run = torch.cumprod((sim[s:] > tau).long(), dim=0)          # positions static from s to s+1+j
        for j in range(run.shape[0]):
            e = s + 1 + j
            out[s, e] = int(run[j].sum()) * (e - s)
    return out


def windows_reference(sav: torch.Tensor, max_window: int) -> tuple[list, int]:
    n = sav.shape[0]
    dp = [0] * n
    prev = [0] * n
    for i in range(n):
        best, best_j = (dp[i - 1] if i > 0 else 0), i
        for w in range(2, min(i + 1, max_window) + 1):
            j = i - w
            val = (dp[j] if j >= 0 else 0) + int(sav[j + 1, i])
            if val > best:
                best, best_j = val, j + 1
        dp[i], prev[i] = best, best_j
    out, i = [], n - 1
    while i >= 0:
        out.append((prev[i], i))
        i = prev[i] - 1
    return out[::-1], dp[-1]


def compare_windows(frames: int, positions: int, repeats: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    # scenes of random length: high similarity inside, a cut between them
    sim = torch.rand(frames - 1, positions, generator=g) * 0.3 + 0.65
    cuts = torch.randperm(frames - 1, generator=g)[: max(1, frames // 8)]
    sim[cuts] = 0.1
    (ref_w, ref_t), ref_ms = timed(lambda: windows_reference(savings_reference(sim, 0.8), 1024), repeats)
    (our_w, our_t), our_ms = timed(lambda: best_windows(window_savings(sim, 0.8), 1024), repeats)
    return {"frames": frames, "positions": positions, "windows": len(our_w), "saved": our_t,
            "same_result": ref_w == our_w and ref_t == our_t, "reference_ms": round(ref_ms, 2),
            "ours_ms": round(our_ms, 2), "speedup": round(ref_ms / our_ms, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=896)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = {"bench": "video_merging", "threads": args.threads,
           "dpc_knn": [compare_dpc(f, p, args.dim, 0.5, args.repeats) for f, p in ((8, 196), (32, 196), (32, 98))],
           "holitom_windows": [compare_windows(f, 196, args.repeats) for f in (8, 16, 32, 64)]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
