"""Accuracy of the built-in tiny model on held-out synthetic video QA, unpruned and under every method.

    python bench/accuracy.py                      # ≥500 held-out questions, all methods × 50/25/15/10%
    python bench/accuracy.py --quick              # CI subset (< 2 min)
    python bench/accuracy.py --methods fastv,random --plot acc.png
    python bench/accuracy.py --plans "fastv:layer=2,retention=0.25" "visionzip:retention=0.2+sharp:retention=0.124"
    python bench/accuracy.py --write-docs         # regenerates the accuracy part of docs/RESULTS.md + its plot
    python bench/accuracy.py --matched-flops --write-docs   # every method at equivalent retention 0.25/0.15/0.10
    python bench/accuracy.py --from-json a.json b.json --write-docs   # merge method subsets run in parallel

Each video is encoded once (``Engine.prepare``) and every plan is run on it. A question counts as
right when the first generated word equals the gold word. Prints JSON: accuracy overall, by
evidence position (early/middle/late/spread) and by question kind, plus the measured retention.

Two ways to line methods up:

* nominal (default): methods whose parameters include ``retention`` run at each ``--retentions``
  value (rows ``fastv@R=0.25``); others at their defaults. Methods then spend different compute:
  FastV at K=2 keeps every token in two layers.
* ``--matched-flops``: every method's own knob (``pruning_core.matching``) is solved on a few
  calibration videos (``--calibration``, seed 5: not test questions) so that its measured
  equivalent retention — the constant visual share with the same prefill FLOPs — equals each
  ``--targets`` value (rows ``fastv@eq=0.25``). A target a method cannot reach on this model (e.g.
  a layer-2 method on a 3-layer model) is a row with the reason, not a silent nearest value.
  ``--write-docs`` writes its own block of docs/RESULTS.md, docs/accuracy_matched.{json,png}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pruning_core.errors import VideoPruneError  # noqa: E402
from pruning_core.synthetic import first_word  # noqa: E402

TEST_SEED = 2  # held-out: training uses seeds ≥ 50,000,000 and validation seed 3 (train/train_tiny.py)
RETENTIONS = (0.5, 0.25, 0.15, 0.1)
MATCHED_TARGETS = (0.25, 0.15, 0.1)
CALIBRATION_SEED = 5   # matched-FLOPs calibration videos: neither test (2), validation (3) nor training
CALIBRATION_N = 3
QUICK_METHODS = ("random", "uniform", "fastv")
DOCS_BEGIN, DOCS_END = "<!-- accuracy:begin -->", "<!-- accuracy:end -->"
MATCHED_BEGIN, MATCHED_END = "<!-- accuracy-matched:begin -->", "<!-- accuracy-matched:end -->"
# rows whose numbers are a property of the built-in vision tower rather than of the method (docs/methods/visionzip.md)
TOWER_BOUND = {"visionzip": "VisionZip ranks by the attention the built-in tiny SigLIP tower's tokens receive; on "
                            "this tower that score is not informative (see docs/methods/visionzip.md), so these rows "
                            "describe the tower, not the method (the 8-layer built-in model kept the 3-layer one's tower): re-check on real checkpoints."}


def build_plans(method_names: list[str] | None, retentions, extra_plans: list[str]) -> list[dict]:
    """The plans to score: [{"label", "method", "retention" (nominal or None), "plan"}]."""
    from pruning_core.registry import methods
    specs = methods()
    names = method_names_for(method_names)
    plans = [{"label": "none", "method": "none", "retention": 1.0, "plan": []}]
    for n in names:
        if any(p.name == "retention" for p in specs[n].params):
            for r in retentions:
                plans.append({"label": f"{n}@R={r:g}", "method": n, "retention": r,
                              "plan": [{"method": n, "retention": r}]})
        else:
            plans.append({"label": n, "method": n, "retention": None, "plan": [{"method": n}]})
    return plans + explicit_plans(extra_plans)


def explicit_plans(extra_plans: list[str]) -> list[dict]:
    from pruning_core.registry import parse_plan
    return [{"label": text, "method": "plan", "retention": None, "plan": parse_plan(text)} for text in extra_plans]


def method_names_for(method_names: list[str] | None) -> list[str]:
    """The requested methods (default: every registered one), checked against the registry."""
    from pruning_core.registry import methods
    specs = methods()
    if method_names is None:
        return [n for n in specs if n != "none"]
    unknown = [n for n in method_names if n not in specs]
    if unknown:
        raise VideoPruneError(f"unknown method(s) {', '.join(unknown)}; registered: {', '.join(specs)}")
    return [n for n in method_names if n != "none"]


def build_matched_plans(engine, method_names: list[str] | None, targets, calibration: list,
                        progress: bool = True, weighting: str = "flops") -> list[dict]:
    """Plans at matched FLOPs: each method's knob solved so its mean measured equivalent retention
    over the ``calibration`` inputs equals every target (``matching.match_step``)."""
    from tqdm import tqdm

    from pruning_core.errors import PlanError
    from pruning_core.matching import engine_measure, match_step
    measure = engine_measure(engine, calibration, weighting)
    plans = [{"label": "none", "method": "none", "retention": 1.0, "target": 1.0, "plan": []}]
    todo = [(n, t) for n in method_names_for(method_names) for t in targets]
    for n, t in tqdm(todo, desc="matching FLOPs", unit="plan", disable=not progress, file=sys.stderr):
        row = {"label": f"{n}@eq={t:g}", "method": n, "retention": None, "target": t, "plan": []}
        try:
            got = match_step(n, t, measure)
            row["plan"] = [got.step]
            row["solved"] = {"param": got.param, "value": round(got.value, 6),
                             "calibration_equivalent_retention": round(got.achieved, 4),
                             "evaluations": got.evaluations}
        except (PlanError, RuntimeError) as e:   # unreachable, not matchable, or the method refused
            row["error"] = str(e)
        plans.append(row)
    return plans


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (95% for z 1.96); (0, 1) when n is 0.

    centre (k + z²/2)/(n + z²), half-width z·√(k(n−k)/n + z²/4)/(n + z²): unlike the normal
    approximation it stays inside [0, 1] and is not degenerate at 0% or 100%.
    """
    if n == 0:
        return 0.0, 1.0
    centre = (k + z * z / 2) / (n + z * z)
    half = z * np.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def _ci(h: np.ndarray) -> list[float]:
    lo, hi = wilson(int(h.sum()), len(h))
    return [round(lo, 4), round(hi, 4)]


def _summary(hits: list[bool], positions: list[str], kinds: list[str]) -> dict:
    h = np.array(hits, dtype=float)
    out = {"acc": round(float(h.mean()), 4) if len(h) else None, "n": len(h), "ci95": _ci(h)}
    for key, labels in (("by_position", positions), ("by_kind", kinds)):
        lab = np.array(labels)
        out[key] = {k: round(float(h[lab == k].mean()), 4) for k in sorted(set(labels))}
        out[key + "_ci95"] = {k: _ci(h[lab == k]) for k in sorted(set(labels))}
    return out


def run_benchmark(model: str = "builtin", n: int = 500, seed: int = TEST_SEED, frames: int = 16,
                  methods: list[str] | None = None, retentions=RETENTIONS, plans: list[str] = (),
                  max_new_tokens: int = 2, records: str | None = None, progress: bool = True,
                  matched: bool = False, targets=MATCHED_TARGETS, calibration: int = CALIBRATION_N,
                  weighting: str = "flops", position_modes: tuple[str, ...] = ("original",)) -> dict:
    from tqdm import tqdm

    from pruning_core.engine import Engine
    from pruning_core.loader import load_model
    from pruning_core.matching import result_retention
    from pruning_core.synthetic import make_dataset

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    eng = Engine(load_model(model, device="cpu"))
    t_match = time.perf_counter()
    if matched:
        calib = [eng.prepare(c.frames, c.question.text) for c in make_dataset(calibration, CALIBRATION_SEED, frames)]
        todo = build_matched_plans(eng, methods, targets, calib, progress, weighting) + explicit_plans(list(plans))
    else:
        todo = build_plans(methods, retentions, list(plans))
    t_match = time.perf_counter() - t_match
    # every plan under each engine positions mode (the unpruned reference once: it keeps every position)
    todo = [dict(p, label=p["label"] if pos == "original" else f"{p['label']} [positions={pos}]", positions=pos)
            for pos in position_modes for p in todo if pos == "original" or p["plan"]]
    samples = make_dataset(n, seed, frames)
    per_plan = {p["label"]: {"hits": [], "ret": [], "eq": [], "lin": [], "err": p.get("error")} for p in todo}
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
                res = eng.run(prep, p["plan"], max_new_tokens=max_new_tokens, positions=p["positions"])
            except VideoPruneError as e:  # a method refusing this model/plan is a result, not a crash
                slot["err"] = str(e)
                continue
            pred = first_word(res.answer)
            slot["hits"].append(pred == q.answer)
            slot["ret"].append(res.retention)
            slot["eq"].append(res.equivalent_retention)
            slot["lin"].append(result_retention(res, "linear"))
            if rec_f:
                rec_f.write(json.dumps({"seed": s.seed, "plan": p["label"], "question": q.text, "gold": q.answer,
                                        "predicted": pred, "answer": res.answer, "position": q.position}) + "\n")
        bar.set_postfix(none=f"{np.mean(per_plan['none']['hits']):.2f}")
    if rec_f:
        rec_f.close()
    results = []
    for p in todo:
        slot = per_plan[p["label"]]
        row = {"label": p["label"], "method": p["method"], "nominal_retention": p["retention"], "plan": p["plan"],
               "positions": p["positions"]}
        for key in ("target", "solved"):
            if key in p:
                row["target_equivalent_retention" if key == "target" else key] = p[key]
        if slot["err"]:
            row["error"] = slot["err"]
        else:
            row.update(_summary(slot["hits"], positions, kinds))
            row["measured_retention"] = round(float(np.mean(slot["ret"])), 4)
            row["equivalent_retention"] = round(float(np.mean(slot["eq"])), 4)
            row["mean_layer_retention"] = round(float(np.mean(slot["lin"])), 4)
        results.append(row)
    mode = {"mode": "matched_flops", "targets": list(targets), "weighting": weighting,
            "calibration": {"seed": CALIBRATION_SEED, "n": calibration},
            "matching_seconds": round(t_match, 1)} if matched else {"mode": "nominal"}
    return {"benchmark": "accuracy", **mode, "model": model, "questions": n, "seed": seed, "frames": frames,
            "chance": 0.25, "answer_rule": "first generated word == gold word (4 options in the question)",
            "max_new_tokens": max_new_tokens, "seconds": round(time.perf_counter() - t0, 1),
            "unpruned": next(r for r in results if r["label"] == "none"), "results": results}


MERGE_KEYS = ("model", "questions", "seed", "frames", "mode", "weighting", "targets", "calibration", "max_new_tokens")


def merge_reports(reports: list[dict]) -> dict:
    """One report from runs over disjoint method subsets of the SAME questions (parallel processes).

    Refuses reports that differ in model, questions, seed, frames or matching mode, or whose unpruned
    rows disagree (then they did not see the same questions). Seconds add up: the work, not the wall.
    """
    first = reports[0]
    for r in reports[1:]:
        diff = [k for k in MERGE_KEYS if r.get(k) != first.get(k)]
        if diff:
            raise VideoPruneError(f"reports differ in {', '.join(diff)}; only runs of the same benchmark merge")
        if r["unpruned"].get("acc") != first["unpruned"].get("acc"):
            raise VideoPruneError("reports disagree on the unpruned accuracy: they did not run the same questions")
    out = dict(first)
    seen, results = set(), []
    for r in reports:
        for row in r["results"]:
            if row["label"] not in seen:
                seen.add(row["label"])
                results.append(row)
    out["results"] = results
    for key in ("seconds", "matching_seconds"):
        if key in first:
            out[key] = round(sum(r.get(key, 0.0) for r in reports), 1)
    return out


def plot_x_key(report: dict) -> str:
    """The retention a report's rows are lined up on: the one they were matched on (``--matched-flops
    --weighting linear``: the mean visual share over layers), else the FLOPs-weighted one."""
    linear = report.get("mode") == "matched_flops" and report.get("weighting") == "linear"
    return "mean_layer_retention" if linear else "equivalent_retention"


def plot(report: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = report["unpruned"]["acc"]
    fig, ax = plt.subplots(figsize=(9.5, 4.8))
    x_key = plot_x_key(report)
    linear = x_key == "mean_layer_retention"
    by_method: dict[str, list] = {}
    for r in report["results"]:
        if r.get("acc") is not None and r["method"] not in ("none", "plan"):
            lo, hi = r.get("ci95", (r["acc"], r["acc"]))
            by_method.setdefault(r["method"], []).append((r[x_key], r["acc"], lo, hi))
    cmap = plt.get_cmap("tab20")
    markers = "osD^v<>Ph*Xp"
    for i, (name, pts) in enumerate(sorted(by_method.items())):
        pts.sort()
        x, y = np.array([p[0] for p in pts]) * 100, np.array([p[1] for p in pts]) * 100
        err = np.array([[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]]) * 100  # Wilson 95%
        ax.errorbar(x, y, yerr=err, marker=markers[i % len(markers)], color=cmap(i % 20), label=name,
                    capsize=2, lw=1, elinewidth=0.7)
    ax.axhline(base * 100, color="black", ls="--", lw=1, label=f"unpruned ({base:.0%})")
    ax.axhline(report["chance"] * 100, color="gray", ls=":", lw=1, label="chance")
    ax.set_xlabel("equivalent retention (% of original visual tokens, " +
                  ("mean over layers)" if linear else "FLOPs-weighted over layers)"))
    ax.set_ylabel("held-out accuracy (%), Wilson 95% interval")
    matched = " at matched FLOPs" if report.get("mode") == "matched_flops" else ""
    ax.set_title(f"{_model_title(report)}, {report['questions']} synthetic questions, {report['frames']} frames{matched}",
                 fontsize=10)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: points sit at every corner
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _model_title(report: dict) -> str:
    return "Built-in tiny LLaVA-OV" if report["model"] == "builtin" else str(report["model"])


def _tower_notes(results: list[dict]) -> tuple[dict[str, str], list[str]]:
    """Footnote marks for rows that describe the built-in vision tower rather than the method."""
    marks, notes = {}, []
    for i, (method, text) in enumerate(sorted(TOWER_BOUND.items())):
        if any(r["method"] == method for r in results):
            marks[method] = "†" * (i + 1)
            notes.append(f"{marks[method]} {text}")
    return marks, notes


def _with_ci(acc: float, ci, digits: int) -> str:
    """The accuracy and its Wilson 95% interval, as in 92.6% [90.0–94.4] (older reports: the accuracy alone)."""
    if not ci:
        return f"{acc:.{digits}%}"
    return f"{acc:.{digits}%} [{ci[0] * 100:.{digits}f}–{ci[1] * 100:.{digits}f}]"


def _display_label(row: dict) -> str:
    """Row label; reports saved before nominal rows were labelled ``method@R=…`` read ``method@0.25``."""
    r = row.get("nominal_retention")
    if r not in (None, 1.0) and row["label"] == f"{row['method']}@{r:g}":
        return f"{row['method']}@R={r:g}"
    return row["label"]


def markdown(report: dict, plot_name: str | None) -> str:
    u = report["unpruned"]
    pos = ("early", "middle", "late", "spread")
    matched = report.get("mode") == "matched_flops"
    json_name = "accuracy_matched.json" if matched else "accuracy.json"
    flag = " --matched-flops" if matched else ""
    if matched and report.get("weighting", "flops") != "flops":
        flag += f" --weighting {report['weighting']}"
    if report["questions"] != 500:
        flag += f" --n {report['questions']}"
    begin, end = (MATCHED_BEGIN, MATCHED_END) if matched else (DOCS_BEGIN, DOCS_END)
    title = (f"## Accuracy at matched FLOPs ({_model_title(report).lower()})" if matched
             else f"## Accuracy on synthetic video QA ({_model_title(report).lower()})")
    model_flag = "" if report["model"] == "builtin" else f" --model {report['model']}"
    lines = [begin, title, "",
             f"Regenerate: `python bench/accuracy.py{flag}{model_flag} --write-docs` (raw report: `docs/{json_name}`; "
             f"re-plot only: `python bench/accuracy.py --from-json docs/{json_name} --write-docs`) "
             f"({report['questions']} held-out questions, seed {report['seed']}, {report['frames']} frames; chance "
             f"{report['chance']:.0%}; {report['seconds']:.0f} s on this machine). Measured, not tuned: every number is "
             "what the run printed" + (f"; brackets are Wilson 95% intervals (per position: about "
                                       f"{report['questions'] // 4} questions each)."
                                       if "ci95" in report["unpruned"] else ".")]
    if matched:
        cal = report["calibration"]
        weighting = report.get("weighting", "flops")
        what = ("the constant visual share with the same prefill FLOPs of this model (HieraVid eq. 12)"
                if weighting == "flops" else "the mean visual share over layers (`--weighting linear`: what the "
                "FLOPs weighting reduces to on 7B checkpoints, where n ≪ 2d + m)")
        lines += ["", f"Every method's own knob is solved (`pruning_core.matching`) so that its equivalent retention — "
                  f"{what} — equals the target, "
                  f"measured on {cal['n']} calibration videos (seed {cal['seed']}, not test questions); rows are "
                  "labelled by that target (`method@eq=R`). The table shows the solved setting and the equivalent "
                  "retention measured on the test questions. Unreachable targets say why (a layer-K method keeps "
                  "every token in its first K layers, which bounds it on a shallow model). Nominal-R rows: "
                  "`python bench/accuracy.py` (`method@R=…`)."]
    else:
        lines += ["", "Rows are at NOMINAL retention (`method@R=…`: the method's own retention parameter); methods "
                  "then spend different compute (see the equivalent-retention column). For rows at the same "
                  "compute: `python bench/accuracy.py --matched-flops`."]
    lines += ["", f"Unpruned: **{_with_ci(u['acc'], u.get('ci95'), 1)}** — " + ", ".join(
        f"{p} {_with_ci(u['by_position'][p], u.get('by_position_ci95', {}).get(p), 1)}" for p in pos
        if p in u["by_position"]), ""]
    head = ("| plan | " + ("solved setting | " if matched else "") + "kept after last stage | equivalent retention "
            "(FLOPs) | mean over layers | acc | ")
    lines += [head + " | ".join(pos) + " |", "|---|" + ("---|" if matched else "") + "---|---|---|---|" + "---|" * len(pos)]
    marks, notes = _tower_notes(report["results"])
    for r in report["results"]:
        label = _display_label(r) + marks.get(r["method"], "")
        solved = ""
        if matched:
            sv = r.get("solved")
            solved = (f"{sv['param']}={sv['value']:.4g} | " if sv else "— | ")
        if "error" in r:
            lines.append(f"| {label} | {solved}— | — | — | error: {r['error']} |" + " |" * len(pos))
            continue
        cells = " | ".join(_with_ci(r["by_position"][p], r.get("by_position_ci95", {}).get(p), 0)
                           if p in r["by_position"] else "—" for p in pos)
        lin = r.get("mean_layer_retention")
        lines.append(f"| {label} | {solved}{r['measured_retention']:.1%} | {r['equivalent_retention']:.1%} | "
                     f"{'—' if lin is None else f'{lin:.1%}'} | {_with_ci(r['acc'], r.get('ci95'), 1)} | {cells} |")
    if notes:
        lines += [""] + notes
    if plot_name:
        lines += ["", f"![accuracy vs equivalent retention]({plot_name})"]
    lines += ["", "The built-in model only knows this synthetic world (coloured shapes on plain backgrounds); "
                  "real videos need a real checkpoint.", end]
    return "\n".join(lines) + "\n"


def write_docs(report: dict, docs_dir: Path = ROOT / "docs") -> Path:
    """Update this mode's block of docs/RESULTS.md and write its plot and raw JSON report."""
    docs_dir.mkdir(exist_ok=True)
    matched = report.get("mode") == "matched_flops"
    stem = "accuracy_matched" if matched else "accuracy"
    begin, end = (MATCHED_BEGIN, MATCHED_END) if matched else (DOCS_BEGIN, DOCS_END)
    plot(report, str(docs_dir / f"{stem}.png"))
    (docs_dir / f"{stem}.json").write_text(json.dumps({k: v for k, v in report.items() if k != "docs"}, indent=1) + "\n")
    md = markdown(report, f"{stem}.png")
    path = docs_dir / "RESULTS.md"
    old = path.read_text() if path.exists() else "# Results\n\n"
    if begin in old and end in old:
        new = old[:old.index(begin)] + md + old[old.index(end) + len(end) + 1:]
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
    ap.add_argument("--retentions", default=",".join(f"{r:g}" for r in RETENTIONS), help="nominal mode: retentions")
    ap.add_argument("--matched-flops", action="store_true",
                    help="solve every method's knob so its equivalent retention equals each --targets value")
    ap.add_argument("--targets", default=",".join(f"{r:g}" for r in MATCHED_TARGETS),
                    help="--matched-flops: target equivalent retentions (default 0.25,0.15,0.1)")
    ap.add_argument("--calibration", type=int, default=CALIBRATION_N,
                    help=f"--matched-flops: calibration videos the knobs are solved on (default {CALIBRATION_N})")
    ap.add_argument("--weighting", choices=("flops", "linear"), default="flops",
                    help="--matched-flops: flops = this model's prefill FLOPs (eq. 12); linear = mean visual share "
                         "over layers (what the FLOPs weighting is on 7B checkpoints; tiny models are attention-bound)")
    ap.add_argument("--plans", nargs="+", default=[], help="explicit plan strings, e.g. 'fastv:layer=2,retention=0.25'")
    ap.add_argument("--quick", action="store_true", help=f"CI subset: 120 questions, {','.join(QUICK_METHODS)} at 25/10%%")
    ap.add_argument("--max-new-tokens", type=int, default=2)
    ap.add_argument("--positions", default="original",
                    help="engine positions modes to run every plan under, comma-separated: original,compact")
    ap.add_argument("--plot", metavar="FILE.png")
    ap.add_argument("--records", metavar="FILE.jsonl", help="write every (question, plan, gold, predicted) row")
    ap.add_argument("--write-docs", action="store_true", help="update docs/RESULTS.md and docs/accuracy.png")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--from-json", metavar="FILE", nargs="+",
                    help="re-plot / re-write docs from saved report(s) instead of running; several reports of the "
                         "same questions (method subsets run in parallel) are merged")
    args = ap.parse_args(argv)
    try:
        rets = tuple(float(x) for x in args.retentions.split(",") if x)
        methods = args.methods.split(",") if args.methods else None
        n = args.n
        targets = tuple(float(x) for x in args.targets.split(",") if x)
        if args.quick:
            n = min(n, 120)
            rets = targets = (0.25, 0.1)
            methods = methods or list(QUICK_METHODS)
        if args.calibration < 1:
            raise VideoPruneError("--calibration must be >= 1")
        if not targets or any(not 0 < r <= 1 for r in targets):
            raise VideoPruneError("--targets must be equivalent retentions in (0, 1]")
        if n < 1 or any(not 0 < r <= 1 for r in rets):
            raise VideoPruneError("--n must be >= 1 and retentions in (0, 1]")
        if args.from_json:
            report = merge_reports([json.loads(Path(f).read_text()) for f in args.from_json])
        else:
            pos_modes = tuple(x.strip() for x in args.positions.split(",") if x.strip())
            if not pos_modes or any(m not in ("original", "compact") for m in pos_modes):
                raise VideoPruneError("--positions takes original and/or compact")
            report = run_benchmark(args.model, n, args.seed, args.frames, methods, rets, args.plans,
                                   args.max_new_tokens, args.records, not args.no_progress,
                                   matched=args.matched_flops, targets=targets, calibration=args.calibration,
                                   weighting=args.weighting, position_modes=pos_modes)
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
