"""HieraVid greedy MAP: float32 vs float64 selections on the built-in model's real DPP inputs.

For every DPP call a HieraVid plan makes (pre-LLM and each layer stage), the same features,
relevance, segments and budgets are run through the greedy in float32 (the kernel dtype the
project used before) and in float64 (now), and through the straightforward float64 greedy
(``dpp.greedy_map_reference``, block by block). Prints JSON: per stage the share of kept tokens
float32 / float64 agree on, and how many picks came from determinant gain vs the relevance
fallback under each precision.

    python bench/dpp_precision.py --n 40 --plan "hieravid:retention=0.1"
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402


def run(n: int, plan: str, seed: int, frames: int) -> dict:
    from pruning_core.dpp import greedy_map_lowrank
    from pruning_core.engine import Engine
    from pruning_core.loader import load_model
    from pruning_core.methods import hieravid_ops as ops
    from pruning_core.synthetic import make_dataset

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    calls: list[tuple] = []
    real = ops.dpp_select

    def spy(vis, r, seg, k, features="raw", stats=None):
        calls.append((vis.detach().clone(), r.detach().clone(), seg.clone(), k.clone(), features))
        return real(vis, r, seg, k, features, stats)

    ops.dpp_select = spy
    eng = Engine(load_model("builtin", device="cpu"))
    per_stage: dict[int, dict] = {}
    for s in make_dataset(n, seed, frames):
        calls.clear()
        eng.run(eng.prepare(s.frames, s.question.text), plan, max_new_tokens=1)
        for i, (vis, r, seg, k, features) in enumerate(calls):
            st32, st64 = {}, {}
            f32 = ops.dpp_features(vis, r, features).float()
            p32 = greedy_map_lowrank(f32, k, seg, priority=r.float(), stats=st32)
            p32 = torch.sort(p32[p32 >= 0]).values
            p64 = real(vis, r, seg, k, features, st64)
            row = per_stage.setdefault(i, {"kept": 0, "agree": 0, "gain32": 0, "gain64": 0, "calls": 0})
            row["calls"] += 1
            row["kept"] += int(p64.numel())
            row["agree"] += int(torch.isin(p32, p64).sum())
            row["gain32"] += st32["dpp_picks"]
            row["gain64"] += st64["dpp_picks"]
    ops.dpp_select = real
    out = []
    for i, row in sorted(per_stage.items()):
        out.append({"stage": i + 1, "calls": row["calls"], "kept": row["kept"],
                    "fp32_agrees_with_fp64": round(row["agree"] / max(row["kept"], 1), 4),
                    "gain_picks_fp32": round(row["gain32"] / max(row["kept"], 1), 4),
                    "gain_picks_fp64": round(row["gain64"] / max(row["kept"], 1), 4)})
    return {"benchmark": "dpp_precision", "model": "builtin", "plan": plan, "questions": n, "stages": out}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--plan", default="hieravid:retention=0.1")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--frames", type=int, default=16)
    a = ap.parse_args(argv)
    print(json.dumps(run(a.n, a.plan, a.seed, a.frames), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
