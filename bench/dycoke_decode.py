"""DyCoke's decode-time KV pruning, official (per-step mask) vs evict, on the built-in model.

    OMP_NUM_THREADS=1 python bench/dycoke_decode.py --n 200          # JSON on stdout
    python bench/dycoke_decode.py --from-json OUT.json --markdown      # the RESULTS.md table

DyCoke prunes the KV cache only while DECODING, and the first answer token comes from the prefill,
so on one-word answers the usual "first generated word" accuracy cannot see it (identical by
construction). Two protocols:

* ``prompt-first``: the whole prompt is prefilled, the answer decoded (the usual accuracy; only
  tokens after the first see the pruned cache — here the end-of-answer token).
* ``question-after-video`` (the open-ended measure): only the video (up to the newline after it) is
  prefilled; the question, the end-of-turn and the assistant header are then fed through the
  decoder token by token on the pruned cache, and the answer is generated after them — as in a
  chat where the question arrives after the video was encoded. Every token of the question and
  the answer attends through DyCoke's pruned cache, so official (re-ranked from the current
  token at every step) and evict (ranked once from the last prefill token, before the question
  exists) can differ. Scored: generated answer's first word == gold word, and agreement with the
  unpruned model's answer under the same protocol.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

PLANS = ("none", "dycoke:ttm=false,decode=official", "dycoke:ttm=false,decode=evict",
         "dycoke:decode=official", "dycoke:decode=evict")
PROTOCOLS = ("prompt-first", "question-after-video")


def first_word(text: str) -> str:
    m = re.search(r"[a-z]+", text.lower())
    return m.group(0) if m else ""


def cut_after_video(prep):
    """Split a prepared prompt right after the newline that follows the video (see module doc)."""
    from pruning_core.engine import split_prompt
    last = int(prep.vis_pos[-1]) + (0 if prep.encoding.extra is None else int(prep.encoding.extra.shape[0]))
    return split_prompt(prep, last + 2)


def run(model: str, n: int, seed: int, frames: int, plans=PLANS, max_new_tokens: int = 3, progress: bool = True) -> dict:
    from tqdm import tqdm

    from pruning_core.engine import Engine
    from pruning_core.loader import load_model
    from pruning_core.synthetic import make_dataset

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    eng = Engine(load_model(model, device="cpu"))
    samples = make_dataset(n, seed, frames)
    slots = {(proto, p): {"hit": [], "agree": [], "pruned_steps": [], "steps": [], "kv": []}
             for proto in PROTOCOLS for p in plans}
    t0 = time.perf_counter()
    for s in tqdm(samples, desc="dycoke decode", unit="q", disable=not progress, file=sys.stderr):
        prep = eng.prepare(s.frames, s.question.text)
        inputs = {"prompt-first": (prep, []), "question-after-video": cut_after_video(prep)}
        for proto, (pp, forced) in inputs.items():
            base = None
            for p in plans:
                res = eng.run(pp, p, max_new_tokens=max_new_tokens, feed_tokens=forced)
                word = first_word(res.answer)
                base = word if base is None else base   # the first plan is the reference
                sl = slots[(proto, p)]
                sl["hit"].append(word == s.question.answer)
                sl["agree"].append(word == base)
                sl["kv"].append(res.kv_cache_bytes_final)
                steps = next((r.info.get("steps") for r in res.stages if r.name == "dycoke-kv"), None)
                if steps:
                    sl["pruned_steps"].append(sum(1 for st in steps if st[2]))
                    sl["steps"].append(len(steps))
    rows = []
    for (proto, p), sl in slots.items():
        row = {"protocol": proto, "plan": p, "acc": round(float(np.mean(sl["hit"])), 4),
               "agreement_with_unpruned": round(float(np.mean(sl["agree"])), 4),
               "kv_cache_bytes_final": int(np.mean(sl["kv"]))}
        if sl["steps"]:
            row["pruned_step_share"] = round(float(np.sum(sl["pruned_steps"]) / max(1, np.sum(sl["steps"]))), 4)
        rows.append(row)
    return {"benchmark": "dycoke_decode", "model": model, "questions": n, "seed": seed, "frames": frames,
            "num_layers": eng.info.num_layers, "max_new_tokens": max_new_tokens,
            "answer_rule": "first generated word == gold word", "seconds": round(time.perf_counter() - t0, 1),
            "results": rows}


def markdown(report: dict) -> str:
    lines = ["| protocol | plan | accuracy | agrees with unpruned | share of decode steps pruned | KV cache at the end |",
             "|---|---|---|---|---|---|"]
    for r in report["results"]:
        share = f"{r['pruned_step_share']:.0%}" if "pruned_step_share" in r else "—"
        lines.append(f"| {r['protocol']} | `{r['plan']}` | {r['acc']:.1%} | {r['agreement_with_unpruned']:.1%} | "
                     f"{share} | {r['kv_cache_bytes_final'] / 1024:.0f} KiB |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="builtin")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=3)
    ap.add_argument("--plans", nargs="+", default=list(PLANS), help="plans to compare (the first should be none)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--from-json", metavar="FILE")
    ap.add_argument("--markdown", action="store_true", help="print the markdown table instead of JSON")
    args = ap.parse_args(argv)
    from pruning_core.errors import VideoPruneError
    try:
        if args.n < 1 or args.max_new_tokens < 1:
            raise VideoPruneError("--n and --max-new-tokens must be >= 1")
        from pruning_core.registry import parse_plan
        for p in args.plans:
            parse_plan(p)          # a bad plan is refused before the model loads
        report = json.loads(Path(args.from_json).read_text()) if args.from_json else \
            run(args.model, args.n, args.seed, args.frames, plans=tuple(args.plans),
                max_new_tokens=args.max_new_tokens, progress=not args.no_progress)
    except (VideoPruneError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(markdown(report) if args.markdown else json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
