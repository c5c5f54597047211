"""SharpV overhead scaling: the visual stage and the memory stage's per-layer test must be O(n·d).

Times both on synthetic visual embeddings at N and 4N tokens (frames x tokens-per-frame of
LLaVA-OneVision: 196 per frame) and prints JSON with the growth ratios (≈ 4 for linear, 16 for
quadratic). It also checks the batched visual stage against a straightforward per-frame loop
written from the paper's formulas (√(2−2cos), torch.topk per frame): same kept tokens, speed ratio.

    OMP_NUM_THREADS=1 python bench/sharpv_scaling.py [--frames 8] [--dim 896] [--repeats 5]
Absolute timings on a shared CPU are noisy: read the ratios.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pruning_core.layout import TokenLayout  # noqa: E402
from pruning_core.methods import sharpv_ops as ops  # noqa: E402
from pruning_core.methods.sharpv import SharpVVisual  # noqa: E402
from pruning_core.registry import get_method  # noqa: E402
from pruning_core.stages import PreContext  # noqa: E402


def synthetic_video(frames: int, tokens: int, dim: int, seed: int = 0) -> torch.Tensor:
    """Frames that drift slowly with a few patches changing a lot, like real video features."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(tokens, dim, generator=g)
    out = []
    for _ in range(frames):
        base = base + 0.3 * torch.randn(tokens, dim, generator=g)
        jump = torch.rand(tokens, generator=g) < 0.1
        base[jump] = torch.randn(int(jump.sum()), dim, generator=g)
        out.append(base.clone())
    return torch.cat(out)


def reference_keep(x: torch.Tensor, frames: int, tokens: int, w: float = 1.0) -> torch.Tensor:
    """The paper's procedure frame by frame, without any of our batching (for checking only)."""
    def dis(a, b):
        cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
        return torch.sqrt(torch.clamp(2 - 2 * cos, min=0))

    v = x.view(frames, tokens, -1).float()
    kept = []
    for t in range(frames):
        s = dis(v[t], v[t].mean(0, keepdim=True))                    # eq. 2
        tt = s if t == 0 else dis(v[t], v[t - 1])                     # eq. 3 (first frame: eq. 6)
        r = min(1.0, float(tt.norm()) / (2 * math.sqrt(tokens)))     # eq. 5 / 6
        k = min(tokens, max(1, math.ceil(r * tokens - 1e-6)))
        top = torch.topk(tt + w * s, k).indices                      # eq. 4
        kept.append(torch.sort(top).values + t * tokens)
    return torch.cat(kept)


def timed_pair(fn_n, fn_4n, repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` ms of two functions, measured alternately so both see the same machine load
    (the minimum is the least noisy estimate on a shared CPU: noise only ever adds time)."""
    fn_n(), fn_4n()  # warm-up
    a, b = [], []
    for _ in range(repeats):
        for fn, acc in ((fn_n, a), (fn_4n, b)):
            t0 = time.perf_counter()
            fn()
            acc.append((time.perf_counter() - t0) * 1000.0)
    return min(a), min(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=8, help="frames at size N (4N uses 4x as many)")
    ap.add_argument("--tokens", type=int, default=196, help="tokens per frame")
    ap.add_argument("--dim", type=int, default=896, help="LLM hidden size (896 = LLaVA-OV-0.5B)")
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()

    stage = SharpVVisual("sharpv", get_method("sharpv").validate({}))
    rows, calls = [], []
    for frames in (args.frames, 4 * args.frames):
        layout = TokenLayout(frames, 1, args.tokens)
        x = synthetic_video(frames, args.tokens, args.dim)
        d = args.dim
        ctx = PreContext(embeds=x, ids=torch.arange(layout.num_tokens), layout=layout,
                         query=torch.zeros(d), text=torch.zeros(4, d))
        sel = stage.select(ctx)
        hidden = x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
        calls.append({
            "visual_stage_ms": lambda ctx=ctx: stage.select(ctx),
            "reference_loop_ms": lambda x=x, f=frames: reference_keep(x, f, args.tokens),
            "memory_test_ms": lambda x=x, h=hidden: ops.degraded(ops.visual_similarity(h, x), 0.2),
        })
        rows.append({"frames": frames, "tokens": layout.num_tokens, "retention": sel.info["retention"],
                     "same_as_reference": bool(torch.equal(sel.keep, reference_keep(x, frames, args.tokens)))})
    for key in calls[0]:
        rows[0][key], rows[1][key] = timed_pair(calls[0][key], calls[1][key], args.repeats)
    n, n4 = rows
    out = {
        "bench": "sharpv_scaling",
        "dim": args.dim,
        "torch_threads": torch.get_num_threads(),
        "sizes": rows,
        "visual_stage_growth_at_4x_tokens": round(n4["visual_stage_ms"] / n["visual_stage_ms"], 2),
        "memory_test_growth_at_4x_tokens": round(n4["memory_test_ms"] / n["memory_test_ms"], 2),
        # t ∝ n^e: e = 1 is linear, 2 quadratic
        "visual_stage_exponent": round(math.log(n4["visual_stage_ms"] / n["visual_stage_ms"], 4), 2),
        "memory_test_exponent": round(math.log(n4["memory_test_ms"] / n["memory_test_ms"], 4), 2),
        "reference_loop_exponent": round(math.log(n4["reference_loop_ms"] / n["reference_loop_ms"], 4), 2),
        "linear_would_be": 4.0,
        "quadratic_would_be": 16.0,
        "speedup_vs_reference_loop": [round(r["reference_loop_ms"] / r["visual_stage_ms"], 2) for r in rows],
    }
    for r in rows:
        for k in ("visual_stage_ms", "reference_loop_ms", "memory_test_ms"):
            r[k] = round(r[k], 3)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
