"""SharpV costs in one run: prefill speedup at the retention Visual SharpV chose, and KV-cache bytes
and decode time per token (TPOT) with and without Memory SharpV.

Random weights do not degrade visual features the way a trained LLM does (their cos(V_l, V) curve
stays near 1, where the paper's Fig. 3 falls below 0.2 after about half the layers), so by default M
is calibrated from this model's own curve to withdraw after the middle layer, the depth the paper
reports; ``--m`` sets it explicitly. Timing and memory depend only on where the withdrawal happens.

    OMP_NUM_THREADS=1 python bench/sharpv_memory.py            # qwen2-0.5b dims, 8x196 visual tokens
    OMP_NUM_THREADS=1 python bench/sharpv_memory.py --quick    # tiny config, seconds
Absolute timings on a shared CPU are noisy: read the ratios (runs are interleaved).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import build_engine, median, prepare_embeds  # noqa: E402


def calibrated_m(curve: list[float], layer: int) -> float:
    """An M the curve first falls below right after ``layer`` (or as close after it as the curve allows)."""
    for j in range(max(1, layer), len(curve) - 1):
        if curve[j] < min(curve[:j]):
            return (min(curve[:j]) + curve[j]) / 2
    return min(curve) - 1.0  # curve never drops: nothing withdrawn, reported as such


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    eng = build_engine(args.dims)
    prep = prepare_embeds(eng, args.frames, args.grid)
    n_layers = eng.info.num_layers
    probe = eng.run(prep, "sharpv+sharpv_memory:m=-1", max_new_tokens=1)
    curve = [s for _, s in probe.stages[-1].info["similarity"]]
    m = args.m if args.m is not None else calibrated_m(curve, n_layers // 2 - 1)
    plans = {"none": "none", "sharpv": "sharpv", "sharpv+memory": f"sharpv+sharpv_memory:m={m!r}"}
    prefill: dict[str, list[float]] = {k: [] for k in plans}
    tpot: dict[str, list[float]] = {k: [] for k in plans}
    last = {}
    for k, p in plans.items():   # warm-up
        eng.run(prep, p, max_new_tokens=2)
    for _ in range(args.repeats):
        for k, p in plans.items():  # interleaved so the shared machine's drift hits every plan alike
            res = eng.run(prep, p, max_new_tokens=args.decode + 1)
            prefill[k].append(res.prefill_ms)
            if res.decode_steps:
                tpot[k].append(res.decode_ms_per_token)
            last[k] = res
    rows = {}
    for k in plans:
        res = last[k]
        rows[k] = {
            "plan": plans[k],
            "retention": round(res.retention, 4),
            "prefill_ms": round(median(prefill[k]), 2),
            "kv_cache_bytes": res.kv_cache_bytes,
            "decode_ms_per_token": round(median(tpot[k]), 3) if tpot[k] else None,
            "decode_steps": res.decode_steps,
        }
    mem = last["sharpv+memory"].stages[-1].info
    vis = last["sharpv"].stages[0].info
    base, sv, svm = rows["none"], rows["sharpv"], rows["sharpv+memory"]

    def ratio(a, b):
        return round(a / b, 3) if a and b else None

    return {
        "bench": "sharpv_memory", "dims": args.dims, "threads": args.threads, "layers": n_layers,
        "visual_tokens": prep.layout.num_tokens, "frames": args.frames, "repeats": args.repeats,
        "sharpv_retention": vis["retention"], "sharpv_frame_ratios": vis["frame_ratios"],
        "similarity_curve": [round(s, 6) for s in curve],
        "m": m, "m_calibrated": args.m is None, "first_withdrawn_layer": mem["first_withdrawn_layer"],
        "memory_ratio": mem["memory_ratio"],
        "plans": rows,
        "prefill_speedup_sharpv": ratio(base["prefill_ms"], sv["prefill_ms"]),
        "prefill_speedup_sharpv_memory": ratio(base["prefill_ms"], svm["prefill_ms"]),
        "kv_bytes_memory_vs_sharpv": ratio(svm["kv_cache_bytes"], sv["kv_cache_bytes"]),
        "kv_bytes_memory_vs_none": ratio(svm["kv_cache_bytes"], base["kv_cache_bytes"]),
        "tpot_memory_vs_sharpv": ratio(svm["decode_ms_per_token"], sv["decode_ms_per_token"]),
        "tpot_sharpv_vs_none": ratio(sv["decode_ms_per_token"], base["decode_ms_per_token"]),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", default="qwen2-0.5b", help="LM dims preset: qwen2-0.5b, qwen2-1.5b, tiny")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--grid", type=int, default=14, help="tokens per frame side (LLaVA-OV: 14)")
    ap.add_argument("--m", type=float, default=None, help="degradation threshold M (default: calibrated, see above)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--decode", type=int, default=8, help="decode steps timed per run (TPOT)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="tiny config, finishes in seconds")
    args = ap.parse_args(argv)
    if args.quick:
        args.dims, args.frames, args.grid, args.repeats = "tiny", 4, 7, 3
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
