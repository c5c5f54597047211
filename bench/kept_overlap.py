"""How much two readings change the kept set: mean overlap |A ∩ B| / |A| of the first stage's kept ids
of two plans, over held-out questions of the built-in model. Prints JSON.

    python bench/kept_overlap.py --n 40 --pair "sharp:retention=0.1" "sharp:retention=0.1,posc_space=prob"
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


def run(n: int, pairs: list[tuple[str, str]], seed: int = 2, frames: int = 16) -> dict:
    from pruning_core.engine import Engine
    from pruning_core.loader import load_model
    from pruning_core.synthetic import make_dataset

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    eng = Engine(load_model("builtin", device="cpu"))
    shares: dict[tuple[str, str], list[float]] = {p: [] for p in pairs}
    for s in make_dataset(n, seed, frames):
        prep = eng.prepare(s.frames, s.question.text)
        for a, b in pairs:
            ka = set(eng.run(prep, a, max_new_tokens=1).stages[0].kept_ids.tolist())
            kb = set(eng.run(prep, b, max_new_tokens=1).stages[0].kept_ids.tolist())
            shares[(a, b)].append(len(ka & kb) / max(1, len(ka)))
    return {"benchmark": "kept_overlap", "model": "builtin", "questions": n, "seed": seed, "frames": frames,
            "pairs": [{"a": a, "b": b, "overlap": round(sum(v) / len(v), 4)} for (a, b), v in shares.items()]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--pair", nargs=2, action="append", required=True, metavar=("PLAN_A", "PLAN_B"))
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--frames", type=int, default=16)
    a = ap.parse_args(argv)
    print(json.dumps(run(a.n, [tuple(p) for p in a.pair], a.seed, a.frames), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
