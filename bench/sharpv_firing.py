"""How often Memory SharpV fires on the built-in model: share of held-out questions where the mean
cos(V_l, V) of the visual hidden states falls below M after some layer, so later layers run
without visual tokens (SharpV eq. 7, Fig. 3), and what that does to accuracy.

    python bench/sharpv_firing.py                 # 500 held-out questions (seed 2), M 0.2, 16 frames
    python bench/sharpv_firing.py --n 100 --m 0.3 --plan sharpv_memory

Prints JSON: firing rate, histogram of the first withdrawn layer, the mean similarity per layer
(Fig. 3 analogue), memory ratio (Table 3's MR) and accuracy with and without the memory stage.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from accuracy import TEST_SEED, first_word  # noqa: E402


def memory_info(res) -> dict:
    """The ``after_prefill`` record of the plan's sharpv_memory stage."""
    rec = [s for s in res.stages if s.name == "sharpv_memory" and "first_withdrawn_layer" in s.info]
    if not rec:
        raise RuntimeError("the plan has no sharpv_memory stage")
    return rec[-1].info


def run(model: str, n: int, seed: int, frames: int, m: float, plan_text: str, progress: bool = True) -> dict:
    from tqdm import tqdm

    from pruning_core.engine import Engine
    from pruning_core.loader import load_model
    from pruning_core.registry import parse_plan
    from pruning_core.synthetic import make_dataset

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    plan = parse_plan(plan_text)
    for stage in plan:
        if stage["method"] == "sharpv_memory":
            stage["m"] = m
    base = [s for s in plan if s["method"] != "sharpv_memory"]
    eng = Engine(load_model(model, device="cpu"))
    t0 = time.perf_counter()
    first, curves, ratios, hits, hits_base = [], [], [], [], []
    for s in tqdm(make_dataset(n, seed, frames), desc="sharpv memory", unit="q", disable=not progress, file=sys.stderr):
        prep = eng.prepare(s.frames, s.question.text)
        res = eng.run(prep, plan, max_new_tokens=2)
        info = memory_info(res)
        first.append(info["first_withdrawn_layer"])
        curves.append([v for _, v in info["similarity"]])
        ratios.append(info["memory_ratio"])
        hits.append(first_word(res.answer) == s.question.answer)
        hits_base.append(first_word(eng.run(prep, base, max_new_tokens=2).answer) == s.question.answer)
    depth = max(len(c) for c in curves)
    per_layer = [float(np.mean([c[i] for c in curves if len(c) > i])) for i in range(depth)]
    return {"benchmark": "sharpv_firing", "model": model, "questions": n, "seed": seed, "frames": frames, "m": m,
            "plan": plan, "firing_rate": round(float(np.mean([f is not None for f in first])), 4),
            "first_withdrawn_layer": {str(k): v for k, v in sorted(Counter(first).items(), key=lambda kv: (kv[0] is None, kv[0] or 0))},
            "mean_similarity_per_layer": [round(v, 4) for v in per_layer],
            "memory_ratio": round(float(np.mean(ratios)), 4),
            "accuracy": round(float(np.mean(hits)), 4), "accuracy_without_memory": round(float(np.mean(hits_base)), 4),
            "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="builtin")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=TEST_SEED)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--m", type=float, default=0.2, help="SharpV memory threshold M")
    ap.add_argument("--plan", default="sharpv+sharpv_memory", help="a plan holding a sharpv_memory stage")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    print(json.dumps(run(args.model, args.n, args.seed, args.frames, args.m, args.plan, not args.no_progress), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
