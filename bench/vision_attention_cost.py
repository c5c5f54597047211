"""CPU time of the vision-attention statistic (VisionZip, PruMerge, HoliTom) with and without recorded q/k.

A SigLIP-so400m-sized layer (``common.siglip_vision_access``: 1152 wide, 16 heads, 27² patches per
frame, pooled to grid² tokens) runs once as in the encode with the adapters' ``ProjectionRecorder``;
``token_attention`` is then timed from the recorded projections and with the one-layer recompute
(``qk=None``), interleaved. Prints JSON: process CPU times per run and their minima, and whether
the attention and key metric are bitwise equal.

    OMP_NUM_THREADS=1 python bench/vision_attention_cost.py [--frames 8] [--grid 14] [--repeats 4]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from common import siglip_vision_access

from pruning_core.vision_attention import token_attention  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--grid", type=int, default=14)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    acc = siglip_vision_access(args.frames, args.grid)
    modes = {"recorded": acc, "recompute": dataclasses.replace(acc, qk=None)}
    cpu: dict[str, list[float]] = {k: [] for k in modes}
    res = {}
    for _ in range(args.repeats):
        for name, vision in modes.items():
            c0 = time.process_time()
            with torch.no_grad():
                res[name] = token_attention(vision)
            cpu[name].append(round((time.process_time() - c0) * 1e3, 1))
    best = {k: min(v) for k, v in cpu.items()}
    print(json.dumps({
        "bench": "vision_attention_cost", "frames": args.frames, "patches_per_frame": 729, "grid": args.grid,
        "threads": args.threads, "cpu_ms_runs": cpu, "cpu_ms_min": best,
        "recorded_vs_recompute": round(best["recorded"] / best["recompute"], 3),
        "attention_equal": bool(torch.equal(res["recorded"][0], res["recompute"][0])),
        "keys_equal": bool(torch.equal(res["recorded"][1], res["recompute"][1])),
    }))


if __name__ == "__main__":
    main()
