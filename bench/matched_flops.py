"""FLOPs-matched settings on a real checkpoint's dimensions, without weights (analytic, HieraVid eq. 12).

    python bench/matched_flops.py                          # LLaVA-OV-7B dims, 32×196 visual tokens
    python bench/matched_flops.py --preset qwen2-vl-7b --visual 2880 --targets 0.25,0.2

Prints JSON: for every method whose kept counts are data-free, the nominal retention's equivalent
retention and the knob value that reaches each target equivalent retention (or why it cannot);
and PDrop's lowest reachable target per first_layer and match mode, with the λ it solves when
matched to FastV K=2 (ShaRP Table 1's PDrop rows).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pruning_core.errors import PlanError, VideoPruneError  # noqa: E402
from pruning_core.flops import flops_report, get_preset  # noqa: E402
from pruning_core.matching import MATCH_CHOICES, analytic_measure, match_step, matchable_methods  # noqa: E402
from pruning_core.methods.pdrop import lowest_reachable, shifted_layers  # noqa: E402


def pdrop_reachability(dims, n_visual: int, stages: int = 4, firsts=(1, 2, 3, 4, 7)) -> list[dict]:
    L, d, m = dims.num_layers, dims.hidden_size, dims.intermediate_size
    rows = []
    for first in firsts:
        if not 1 <= first < L:
            continue
        b = shifted_layers(L, stages, first)
        row = {"first_layer": first, "stages": stages, "boundaries": b,
               "lowest_reachable": {mt: round(lowest_reachable(b, L, 0, n_visual, d, m, mt), 4) for mt in MATCH_CHOICES}}
        lam = {}
        for r in (0.25, 0.2, 0.15, 0.1):
            try:
                rep = flops_report(dims, n_visual, 0, f"pdrop:retention={r},first_layer={first},stages={stages}")
                lam[f"{r:g}"] = round(rep["schedule"][str(b[0])] / n_visual, 4)
            except PlanError:
                lam[f"{r:g}"] = None
        row["lambda_matched_to_fastv"] = lam
        rows.append(row)
    return rows


def method_table(dims, n_visual: int, targets) -> list[dict]:
    measure = analytic_measure(dims, n_visual)
    rows = []
    for name in matchable_methods():
        row: dict = {"method": name}
        try:
            row["nominal"] = {f"{t:g}": round(measure([{"method": name, "retention": t}]), 4) for t in targets}
        except (PlanError, TypeError):
            pass
        for t in targets:
            try:
                got = match_step(name, t, measure)
                row[f"eq{t:g}"] = {got.param: round(got.value, 4), "achieved": round(got.achieved, 4)}
            except PlanError as e:
                row[f"eq{t:g}"] = {"error": str(e)}
        rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="llava-onevision-7b")
    ap.add_argument("--visual", type=int, default=32 * 196, help="visual tokens (default 32×196)")
    ap.add_argument("--targets", default="0.25,0.15,0.1")
    args = ap.parse_args(argv)
    try:
        dims = get_preset(args.preset)
        targets = [float(x) for x in args.targets.split(",") if x]
        if args.visual < 1 or any(not 0 < t <= 1 for t in targets):
            raise VideoPruneError("--visual must be >= 1 and targets in (0, 1]")
    except (VideoPruneError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"benchmark": "matched_flops", "preset": dims.name, "visual_tokens": args.visual,
                      "targets": targets, "pdrop": pdrop_reachability(dims, args.visual),
                      "methods": method_table(dims, args.visual, targets)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
