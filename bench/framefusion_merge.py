"""FrameFusion merge step: our batched version vs a straightforward per-token walk, same inputs.

Both must give the same kept tokens, merged rows and sizes; the JSON reports both timings and
their ratio (absolute timings on this shared machine are noisy: quote the ratio).

    python bench/framefusion_merge.py                      # 16 frames x 196 tokens, d = 896
    python bench/framefusion_merge.py --frames 4 --dim 64  # seconds
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
sys.path.insert(0, os.path.join(ROOT, "tests"))

from framefusion_reference import merge_step_reference  # noqa: E402
from pruning_core.methods.framefusion import merge_decision, merge_selection, predecessor_similarity  # noqa: E402


def video_tokens(frames: int, per_frame: int, dim: int, motion: float, seed: int) -> torch.Tensor:
    """Temporally correlated tokens: each frame drifts from the previous one by ``motion``."""
    g = torch.Generator().manual_seed(seed)
    out = [torch.randn(per_frame, dim, generator=g)]
    for _ in range(frames - 1):
        out.append(out[-1] * (1 - motion) + motion * torch.randn(per_frame, dim, generator=g))
    return torch.cat(out)


def batched(x, ids, sizes, tpf, threshold, upper):
    sim = predecessor_similarity(x, ids, tpf)
    merge, reached = merge_decision(sim, threshold, upper)
    keep, values, new_sizes = merge_selection(x, sizes, merge, ids, tpf)
    return keep, values, new_sizes, reached


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    tpf = args.grid * args.grid
    x = video_tokens(args.frames, tpf, args.dim, args.motion, args.seed)
    ids = torch.arange(x.shape[0])
    sizes = torch.ones(x.shape[0])
    ours, ms = timed(lambda: batched(x, ids, sizes, tpf, args.threshold, args.upper), args.repeats, "min")
    ref, ref_ms = timed(lambda: merge_step_reference(x, ids, sizes, tpf, args.threshold, args.upper), 1, "min")
    keep, values, new_sizes, reached = ours
    same = (keep.tolist() == ref[0] and reached == ref[3] and new_sizes.tolist() == ref[2])
    err = float((values.double() - ref[1]).abs().max()) if values.numel() else 0.0
    return {
        "bench": "framefusion_merge", "tokens": int(x.shape[0]), "frames": args.frames, "dim": args.dim,
        "threshold": args.threshold, "upper": args.upper, "merged": int(x.shape[0] - keep.numel()),
        "budget_reached": bool(reached), "same_kept_and_sizes": bool(same), "max_abs_value_diff": err,
        "batched_ms": round(ms, 3), "reference_ms": round(ref_ms, 3),
        "speed_ratio": round(ref_ms / ms, 1) if ms else None,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--grid", type=int, default=14)
    ap.add_argument("--dim", type=int, default=896)
    ap.add_argument("--motion", type=float, default=0.3)
    ap.add_argument("--threshold", type=float, default=0.6)
    ap.add_argument("--upper", type=float, default=0.7, help="share of tokens merging may remove (cost 0.3)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    print(json.dumps(run(ap.parse_args(argv))))


if __name__ == "__main__":
    main()
