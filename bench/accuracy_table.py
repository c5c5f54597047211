"""Render a bench/accuracy.py JSON as a Markdown table (one row per plan), for docs/RESULTS.md.

    python bench/accuracy.py --plans ... > out.json && python bench/accuracy_table.py out.json
"""
from __future__ import annotations

import json
import sys


def table(report: dict) -> str:
    lines = [f"{report['questions']} held-out questions (seed {report['seed']}, {report['frames']} frames, "
             f"chance {report['chance']:.0%}), model `{report['model']}`.", "",
             "| plan | accuracy | early | middle | late | spread | retention | equivalent retention |",
             "|---|---|---|---|---|---|---|---|"]
    for r in [report["unpruned"]] + [r for r in report["results"] if r["label"] != "none"]:
        p = r["by_position"]
        lines.append(f"| `{r['label']}` | {r['acc']:.1%} | {p.get('early', 0):.0%} | {p.get('middle', 0):.0%} | "
                     f"{p.get('late', 0):.0%} | {p.get('spread', 0):.0%} | {r['measured_retention']:.3f} | "
                     f"{r['equivalent_retention']:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(table(json.load(f)))
