"""Graph-runtime overhead: validation + scheduling + caching as a share of a workflow's run time,
and what an unchanged or one-widget-changed re-run costs.

Prints one JSON object per workflow. The runtime's overhead is the run's wall time minus the
time spent inside node functions. On a shared machine wall times are noisy, so the figures
are the median and the minimum over ``--repeats`` cold runs (fresh runtime, warm process).
The share is quoted both against the whole run and against the run without model loading,
for wall time (which picks up descheduling on a busy machine) and for the CPU time of the
runtime's own thread.

    python bench/runtime_overhead.py                               # every example workflow
    python bench/runtime_overhead.py example_workflows/sharp_vs_fastv.json --repeats 5
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _model_source() -> str:
    from pruning_core.loader import BUILTIN_DIR
    if (BUILTIN_DIR / "config.json").is_file():
        return "builtin"
    # until the built-in model ships, the tiny random test model stands in for it
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_models import tiny_adapter
    from nodes import models
    adapter = tiny_adapter("llava")
    models.register_model("builtin", lambda: adapter)
    return "tiny test model (built-in model not found)"


def _changed_widget(prompt: dict) -> str | None:
    """An override that changes one stage widget (re-runs that stage and what it feeds)."""
    for nid, node in prompt.items():
        if node["class_type"] == "VideoPruneAnswer":
            return f"{nid}.max_new_tokens={int(node['inputs']['max_new_tokens']) + 1}"
    return None


def bench(path: Path, repeats: int, out: Path) -> dict:
    from nodes.runtime import Runtime
    Runtime(output_dir=out).run(path)  # warm-up: imports, first-call allocations
    overhead, overhead_cpu, total, no_load = [], [], [], []
    for _ in range(repeats):
        rt = Runtime(output_dir=out)
        res = rt.run(path)
        load_ms = sum(ms for nid, ms in res.timings_ms.items()
                      if res.prompt[nid]["class_type"] == "VideoPruneLoadModel")
        overhead.append(res.overhead_ms)
        overhead_cpu.append(res.overhead_cpu_ms)
        total.append(res.total_ms)
        no_load.append(res.total_ms - load_ms)
    again = rt.run(path)
    change = _changed_widget(res.prompt)
    partial = rt.run(path, overrides=[change]) if change else None
    med = statistics.median
    return {
        "workflow": path.name,
        "nodes": len(res.prompt),
        "cold_run_ms": {"median": round(med(total), 2), "min": round(min(total), 2)},
        "cold_run_without_model_load_ms": {"median": round(med(no_load), 2), "min": round(min(no_load), 2)},
        "runtime_overhead_ms": {"median": round(med(overhead), 3), "min": round(min(overhead), 3)},
        "runtime_overhead_cpu_ms": {"median": round(med(overhead_cpu), 3), "min": round(min(overhead_cpu), 3)},
        "overhead_share": round(med(overhead) / med(total), 5),
        "overhead_share_without_model_load": round(med(overhead) / med(no_load), 5),
        "overhead_cpu_share_without_model_load": round(med(overhead_cpu) / med(no_load), 5),
        "unchanged_rerun": {"executed": len(again.executed), "cached": len(again.cached),
                            "total_ms": round(again.total_ms, 3), "cpu_ms": round(again.overhead_cpu_ms, 3)},
        "changed_widget_rerun": None if partial is None else {
            "override": change, "executed": partial.executed, "cached": len(partial.cached),
            "total_ms": round(partial.total_ms, 2)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workflows", nargs="*", type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    model = _model_source()
    paths = args.workflows or sorted((REPO / "example_workflows").glob("*.json"))
    with tempfile.TemporaryDirectory() as tmp:
        results = [bench(p, args.repeats, Path(tmp)) for p in paths]
    print(json.dumps({"model": model, "repeats": args.repeats, "workflows": results}, indent=2))


if __name__ == "__main__":
    main()
