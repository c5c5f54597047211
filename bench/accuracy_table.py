"""Render a bench/accuracy.py JSON as a Markdown table (one row per plan), for docs/RESULTS.md.

    python bench/accuracy.py --plans ... > out.json && python bench/accuracy_table.py out.json
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def table(report: dict) -> str:
    lines = [f"{report['questions']} held-out questions (seed {report['seed']}, {report['frames']} frames, "
             f"chance {report['chance']:.0%}), model `{report['model']}`.", "",
             "| plan | accuracy [Wilson 95%] | early | middle | late | spread | retention | equivalent retention "
             "(FLOPs) | mean over layers |",
             "|---|---|---|---|---|---|---|---|---|"]
    from accuracy import _with_ci
    for r in [report["unpruned"]] + [r for r in report["results"] if r["label"] != "none"]:
        if "error" in r:
            lines.append(f"| `{r['label']}` | error: {r['error']} | | | | | | | |")
            continue
        p, ci = r["by_position"], r.get("by_position_ci95", {})
        cells = " | ".join(_with_ci(p[k], ci.get(k), 0) if k in p else "—" for k in ("early", "middle", "late", "spread"))
        lines.append(f"| `{r['label']}` | {_with_ci(r['acc'], r.get('ci95'), 1)} | {cells} | "
                     f"{r['measured_retention']:.3f} | {r['equivalent_retention']:.3f} | "
                     f"{_opt(r.get('mean_layer_retention'))} |")
    return "\n".join(lines) + "\n"


def _opt(v) -> str:
    """A retention to 3 digits; reports saved before the mean-over-layers column read —."""
    return "—" if v is None else f"{v:.3f}"


if __name__ == "__main__":
    for path in sys.argv[1:]:   # several reports: one table each
        with open(path) as f:
            print(table(json.load(f)))
