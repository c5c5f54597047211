"""What stages report, summed over held-out questions of the built-in model.

Every numeric field of each stage's ``info`` is summed over the questions (per plan, per stage),
e.g. ShaRP's RegD post-fill tiers (``filled_centers`` / ``filled_members`` / ``restored_registers``)
or HieraVid's ``dpp_picks`` / ``fallback_picks`` / ``same_as_topk_relevance``. Prints JSON.

    python bench/stage_info.py --n 100 --plans "sharp:retention=0.1" "hieravid:retention=0.1,features=cosine"
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from numbers import Number
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402


def run(n: int, plans: list[str], seed: int = 2, frames: int = 16) -> dict:
    from pruning_core.engine import Engine
    from pruning_core.loader import load_model
    from pruning_core.synthetic import make_dataset

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    eng = Engine(load_model("builtin", device="cpu"))
    sums: dict[str, list[dict]] = {p: [] for p in plans}
    for s in make_dataset(n, seed, frames):
        prep = eng.prepare(s.frames, s.question.text)
        for p in plans:
            res = eng.run(prep, p, max_new_tokens=1)
            rows = sums[p]
            for i, st in enumerate(res.stages):
                if len(rows) <= i:
                    rows.append({"stage_name": st.name, "stage_layer": st.layer, "kept": 0})
                rows[i]["kept"] += st.kept
                for k, v in st.info.items():
                    if isinstance(v, Number) and not isinstance(v, bool) and not k.endswith("_ms") \
                            and k not in ("stage_name", "stage_layer"):
                        rows[i][k] = rows[i].get(k, 0) + v
    return {"benchmark": "stage_info", "model": "builtin", "questions": n, "seed": seed, "frames": frames,
            "plans": [{"plan": p, "stages": rows} for p, rows in sums.items()]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--plans", nargs="+", required=True)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--frames", type=int, default=16)
    a = ap.parse_args(argv)
    print(json.dumps(run(a.n, a.plans, a.seed, a.frames), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
