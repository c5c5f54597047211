"""Accuracy of the built-in tiny model on held-out synthetic video QA, unpruned and under every method.

    python bench/accuracy.py                      # ≥500 held-out questions, all methods × 50/25/15/10%
    python bench/accuracy.py --quick              # CI subset (< 2 min)
    python bench/accuracy.py --methods fastv,random --plot acc.png
    python bench/accuracy.py --plans "fastv:layer=2,retention=0.25" "visionzip:retention=0.2+sharp:retention=0.124"
    python bench/accuracy.py --write-docs         # regenerates the accuracy part of docs/RESULTS.md + its plot

Each video is encoded once (``Engine.prepare``) and every plan is run on it. A question counts as
right when the first generated word equals the gold word. Prints JSON: accuracy overall, by
evidence position (early/middle/late/spread) and by question kind, plus the measured retention.
Methods whose parameters include ``retention`` run at each retention; others at their defaults.
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

from pruning_core.errors import VideoPruneError  # noqa: E402

TEST_SEED = 2  # held-out: training uses seeds ≥ 50,000,000 and validation seed 3 (train/train_tiny.py)
RETENTIONS = (0.5, 0.25, 0.15, 0.1)
QUICK_METHODS = ("random", "uniform", "fastv")
DOCS_BEGIN, DOCS_END = "<!-- accuracy:begin -->", "<!-- accuracy:end -->"


def first_word(text: str) -> str:
    m = re.search(r"[a-z]+", text.lower())
    return m.group(0) if m else ""


def build_plans(method_names: list[str] | None, retentions, extra_plans: list[str]) -> list[dict]:
    """The plans to score: [{"label", "method", "retention" (nominal or None), "plan"}]."""
    from pruning_core.registry import methods, parse_plan
    specs = methods()
    if method_names is None:
        names = [n for n in specs if n != "none"]
    else:
        unknown = [n for n in method_names if n not in specs]
        if unknown:
            raise VideoPruneError(f"unknown method(s) {', '.join(unknown)}; registered: {', '.join(specs)}")
        names = [n for n in method_names if n != "none"]
    plans = [{"label": "none", "method": "none", "retention": 1.0, "plan": []}]
    for n in names:
        if any(p.name == "retention" for p in specs[n].params):
            for r in retentions:
                plans.append({"label": f"{n}@{r:g}", "method": n, "retention": r, "plan": [{"method": n, "retention": r}]})
        else:
            plans.append({"label": n, "method": n, "retention": None, "plan": [{"method": n}]})
    for text in extra_plans:
        plans.append({"label": text, "method": "plan", "retention": None, "plan": parse_plan(text)})
    return plans


def _summary(hits: list[bool], positions: list[str], kinds: list[str]) -> dict:
    h = np.array(hits, dtype=float)
    out = {"acc": round(float(h.mean()), 4) if len(h) else None, "n": len(h)}
    for key, labels in (("by_position", positions), ("by_kind", kinds)):
        lab = np.array(labels)
        out[key] = {k: round(float(h[lab == k].mean()), 4) for k in sorted(set(labels))}
    return out


def run_benchmark(model: str = "builtin", n: int = 500, seed: int = TEST_SEED, frames: int = 16,
                  methods: list[str] | None = None, retentions=RETENTIONS, plans: list[str] = (),
                  max_new_tokens: int = 2, records: str | None = None, progress: bool = True) -> dict:
    from tqdm import tqdm

    from pruning_core.engine import Engine
    from pruning_core.loader import load_model
    from pruning_core.synthetic import make_dataset

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    todo = build_plans(methods, retentions, list(plans))
    eng = Engine(load_model(model, device="cpu"))
    samples = make_dataset(n, seed, frames)
    per_plan = {p["label"]: {"hits": [], "ret": [], "eq": [], "err": None} for p in todo}
    positions = [s.question.position for s in samples]
    kinds = [s.question.kind for s in samples]
    rec_f = open(records, "w") if records else None
    t0 = time.perf_counter()
    bar = tqdm(samples, desc="accuracy", unit="q", disable=not progress, file=sys.stderr)
    for s in bar:
        q = s.question
        prep = eng.prepare(s.frames, q.text)
        for p in todo:
            slot = per_plan[p["label"]]
            if slot["err"]:
                continue
            try:
                res = eng.run(prep, p["plan"], max_new_tokens=max_new_tokens)
            except VideoPruneError as e:  # a method refusing this model/plan is a result, not a crash
                slot["err"] = str(e)
                continue
            pred = first_word(res.answer)
            slot["hits"].append(pred == q.answer)
            slot["ret"].append(res.retention)
            slot["eq"].append(res.equivalent_retention)
            if rec_f:
                rec_f.write(json.dumps({"seed": s.seed, "plan": p["label"], "question": q.text, "gold": q.answer,
                                        "predicted": pred, "answer": res.answer, "position": q.position}) + "\n")
        bar.set_postfix(none=f"{np.mean(per_plan['none']['hits']):.2f}")
    if rec_f:
        rec_f.close()
    results = []
    for p in todo:
        slot = per_plan[p["label"]]
        row = {"label": p["label"], "method": p["method"], "nominal_retention": p["retention"], "plan": p["plan"]}
        if slot["err"]:
            row["error"] = slot["err"]
        else:
            row.update(_summary(slot["hits"], positions, kinds))
            row["measured_retention"] = round(float(np.mean(slot["ret"])), 4)
            row["equivalent_retention"] = round(float(np.mean(slot["eq"])), 4)
        results.append(row)
    return {"benchmark": "accuracy", "model": model, "questions": n, "seed": seed, "frames": frames,
            "chance": 0.25, "answer_rule": "first generated word == gold word (4 options in the question)",
            "max_new_tokens": max_new_tokens, "seconds": round(time.perf_counter() - t0, 1),
            "unpruned": next(r for r in results if r["label"] == "none"), "results": results}


def plot(report: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = report["unpruned"]["acc"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    by_method: dict[str, list] = {}
    for r in report["results"]:
        if r.get("acc") is not None and r["nominal_retention"] not in (None, 1.0):
            by_method.setdefault(r["method"], []).append((r["equivalent_retention"], r["acc"]))
    cmap = plt.get_cmap("tab20")
    markers = "osD^v<>Ph*Xp"
    for i, (name, pts) in enumerate(sorted(by_method.items())):
        pts.sort()
        ax.plot([x * 100 for x, _ in pts], [y * 100 for _, y in pts], marker=markers[i % len(markers)],
                color=cmap(i % 20), label=name)
    ax.axhline(base * 100, color="black", ls="--", lw=1, label=f"unpruned ({base:.0%})")
    ax.axhline(report["chance"] * 100, color="gray", ls=":", lw=1, label="chance")
    ax.set_xlabel("equivalent retention (% of original visual tokens, FLOPs-weighted over layers)")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title(f"Built-in tiny LLaVA-OV, {report['questions']} synthetic questions, {report['frames']} frames")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(report: dict, plot_name: str | None) -> str:
    u = report["unpruned"]
    pos = ("early", "middle", "late", "spread")
    lines = [DOCS_BEGIN, "## Accuracy on synthetic video QA (built-in tiny model)", "",
             f"Regenerate: `python bench/accuracy.py --write-docs` (raw report: `docs/accuracy.json`; re-plot only: `python bench/accuracy.py --from-json docs/accuracy.json --write-docs`) ({report['questions']} held-out questions, "
             f"seed {report['seed']}, {report['frames']} frames × 49 tokens; chance {report['chance']:.0%}; "
             f"{report['seconds']:.0f} s on this machine). Measured, not tuned: every number is what the run printed.",
             "", f"Unpruned: **{u['acc']:.1%}** — " + ", ".join(f"{p} {u['by_position'].get(p, float('nan')):.1%}"
                                                         for p in pos if p in u["by_position"]), "",
             "| plan | kept after last stage | equivalent retention | acc | " + " | ".join(pos) + " |",
             "|---|---|---|---|" + "---|" * len(pos)]
    for r in report["results"]:
        if "error" in r:
            lines.append(f"| {r['label']} | — | — | error: {r['error']} |" + " |" * len(pos))
            continue
        cells = " | ".join(f"{r['by_position'][p]:.1%}" if p in r["by_position"] else "—" for p in pos)
        lines.append(f"| {r['label']} | {r['measured_retention']:.1%} | {r['equivalent_retention']:.1%} | "
                     f"{r['acc']:.1%} | {cells} |")
    if plot_name:
        lines += ["", f"![accuracy vs retention]({plot_name})"]
    lines += ["", "The built-in model only knows this synthetic world (coloured shapes on plain backgrounds); "
                  "real videos need a real checkpoint.", DOCS_END]
    return "\n".join(lines) + "\n"


def write_docs(report: dict, docs_dir: Path = ROOT / "docs") -> Path:
    docs_dir.mkdir(exist_ok=True)
    plot(report, str(docs_dir / "accuracy.png"))
    md = markdown(report, "accuracy.png")
    path = docs_dir / "RESULTS.md"
    old = path.read_text() if path.exists() else "# Results\n\n"
    if DOCS_BEGIN in old and DOCS_END in old:
        new = old[:old.index(DOCS_BEGIN)] + md + old[old.index(DOCS_END) + len(DOCS_END) + 1:]
    else:
        new = old.rstrip("\n") + "\n\n" + md
    path.write_text(new)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="builtin")
    ap.add_argument("--n", type=int, default=500, help="held-out questions (default 500)")
    ap.add_argument("--seed", type=int, default=TEST_SEED)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--methods", help="comma-separated method names (default: every registered method)")
    ap.add_argument("--retentions", default=",".join(f"{r:g}" for r in RETENTIONS))
    ap.add_argument("--plans", nargs="+", default=[], help="explicit plan strings, e.g. 'fastv:layer=2,retention=0.25'")
    ap.add_argument("--quick", action="store_true", help=f"CI subset: 120 questions, {','.join(QUICK_METHODS)} at 25/10%%")
    ap.add_argument("--max-new-tokens", type=int, default=2)
    ap.add_argument("--plot", metavar="FILE.png")
    ap.add_argument("--records", metavar="FILE.jsonl", help="write every (question, plan, gold, predicted) row")
    ap.add_argument("--write-docs", action="store_true", help="update docs/RESULTS.md and docs/accuracy.png")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--from-json", metavar="FILE", help="re-plot / re-write docs from a saved report instead of running")
    args = ap.parse_args(argv)
    try:
        rets = tuple(float(x) for x in args.retentions.split(",") if x)
        methods = args.methods.split(",") if args.methods else None
        n = args.n
        if args.quick:
            n = min(n, 120)
            rets = (0.25, 0.1)
            methods = methods or list(QUICK_METHODS)
        if n < 1 or any(not 0 < r <= 1 for r in rets):
            raise VideoPruneError("--n must be >= 1 and retentions in (0, 1]")
        if args.from_json:
            report = json.loads(Path(args.from_json).read_text())
        else:
            report = run_benchmark(args.model, n, args.seed, args.frames, methods, rets, args.plans,
                                   args.max_new_tokens, args.records, not args.no_progress)
    except (VideoPruneError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.plot:
        plot(report, args.plot)
    if args.write_docs:
        report["docs"] = str(write_docs(report))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
