"""Render a bench/prefill.py JSON as the Markdown table used in docs/RESULTS.md.

    python bench/prefill.py --plan ... > out.json && python bench/prefill_table.py out.json
"""
from __future__ import annotations

import json
import statistics
import sys


def _unpruned(report: dict, after_cpu: str, runs: str) -> str:
    """The line above a table: the unpruned run's CPU time and the set-up."""
    cpu0 = statistics.median(report["plans"][0]["cpu_ms_runs"])
    return (f"Unpruned prefill: {cpu0 / 1000:.1f} s CPU{after_cpu} ({report['visual_tokens']} visual + "
            f"{report['sequence_tokens'] - report['visual_tokens']} text tokens, {report['dims']} dims, "
            f"{report['threads']} thread(s), {runs}).")


def limit_table(report: dict) -> str:
    """CPU-time speedups beside the hardware limit, eq. 12 and the realistic FLOPs count (rows of a
    bench/prefill.py run that recorded ``speedup_limit``)."""
    base = report["plans"][0]
    lines = [_unpruned(report, "", f"{report['repeats']} interleaved runs; its own run vs the bare "
                       f"prefill at its counts: {base['measured_vs_limit']:.3f}"), "",
             "| plan | kept | equivalent retention | CPU-time speedup | limit | measured / limit | eq. 12 | "
             "measured / eq. 12 | realistic FLOPs | measured / realistic | stage overhead |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in report["plans"][1:]:
        lines.append(f"| `{p['plan']}` | {p['kept_tokens']} | {p['equivalent_retention']:.3f} | "
                     f"{p['speedup_cpu']:.2f}× | {p['speedup_limit']:.2f}× | {p['measured_vs_limit']:.3f} | "
                     f"{p['speedup_flops']:.2f}× | {p['cpu_vs_predicted']:.3f} | "
                     f"{p['speedup_flops_realistic']:.2f}× | {p['cpu_vs_realistic']:.3f} | "
                     f"{p['overhead_ms']:.1f} ms ({100 * p['overhead_share']:.2f}%) |")
    lines += ["", "Stage overhead is wall-clock time (a share of the pruned prefill's wall time)."]
    return "\n".join(lines) + "\n"


def sweep_table(report: dict) -> str:
    """A bench/prefill_sweep.py collection: measured, limit, eq. 12 and realistic-FLOPs speedups side by
    side, with TPOT and KV bytes (rows that keep every token have no limit: theirs is the unpruned run)."""
    base = report["plans"][0]
    lines = [_unpruned(report, f", TPOT {base['tpot_cpu_ms']:.1f} ms CPU, KV cache "
                       f"{base['kv_cache_bytes'] / 2 ** 20:.1f} MB",
                       f"{report['repeats']} run(s), one per pass over the plans"), "",
             "| plan | kept | equivalent retention | CPU-time speedup | limit | measured / limit | eq. 12 | "
             "realistic FLOPs | measured / eq. 12 | measured / realistic | TPOT vs unpruned | KV cache | "
             "stage compute (share) | ours (share) | layers / run | runs |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in report["plans"][1:]:
        lim = (f"{p['speedup_limit']:.2f}× | {p['measured_vs_limit']:.3f}" if "speedup_limit" in p else "— | —")
        tpot = f"{p['tpot_ratio']:.2f}×" if p.get("tpot_ratio") is not None else "—"
        stage = (f"{p['overhead_ms']:.0f} ms{' wall' if p.get('stage_clock') == 'wall' else ''} "
                 f"({100 * p['overhead_share']:.1f}%)")
        no_stage = f"{p['ours_cpu_ms']:.0f} ms ({100 * p['ours_share']:.1f}%)" if "ours_cpu_ms" in p else "—"
        layers = f"{p['layers_vs_run']:.3f}" if "layers_vs_run" in p else "—"
        lines.append(f"| `{p['plan']}` | {p['kept_tokens']} | {p['equivalent_retention']:.3f} | "
                     f"{p['speedup_cpu']:.2f}× | {lim} | {p['speedup_flops']:.2f}× | "
                     f"{p['speedup_flops_realistic']:.2f}× | {p['cpu_vs_predicted']:.3f} | {p['cpu_vs_realistic']:.3f} | "
                     f"{tpot} | {p['kv_cache_bytes_final'] / 2 ** 20:.1f} MB | {stage} | {no_stage} | {layers} | {p['repeats']} |")
    for s in report.get("skipped", []):
        lines.append(f"| `{s['plan']}` | — | — | not run: {s['error'][:160]} | | | | | | | | | | | | |")
    lines += ["", "Stage compute is the stages' process CPU time (\"wall\": a row measured before the sweep timed "
              "stages in CPU time), as a share of the pruned prefill; ours is the run's CPU time outside the decoder layers and "
              "outside the stages (bookkeeping, copies, masks, norm and lm_head), measured inside the same run, and "
              "layers / run the decoder layers' share of it: the in-run reading of measured / limit. "
              "TPOT is the CPU time per decode step, as a ratio to the unpruned cache's."]
    return "\n".join(lines) + "\n"


def table(report: dict) -> str:
    if report.get("time", "").startswith("process CPU"):
        return sweep_table(report)
    if all("speedup_limit" in p for p in report["plans"]):
        return limit_table(report)
    base = report["plans"][0]
    cpu = all("speedup_cpu" in p for p in report["plans"])  # runs recorded with process CPU time
    lines = [f"Unpruned prefill: {base['prefill_ms'] / 1000:.1f} s median ({report['visual_tokens']} visual + "
             f"{report['sequence_tokens'] - report['visual_tokens']} text tokens, {report['dims']} dims, "
             f"{report['threads']} thread(s), {report['repeats']} interleaved runs).", "",
             "| plan | kept after last stage | equivalent retention | measured speedup | FLOPs-predicted | "
             "measured / predicted | " + ("CPU-time speedup | CPU / predicted | " if cpu else "") +
             "stage overhead (share of pruned prefill) | KV cache |",
             "|---|---|---|---|---|---|" + ("---|---|" if cpu else "") + "---|---|"]
    for p in report["plans"][1:]:
        extra = f"{p['speedup_cpu']:.2f}× | {p['cpu_vs_predicted']:.3f} | " if cpu else ""
        lines.append(f"| `{p['plan']}` | {p['kept_tokens']} | {p['equivalent_retention']:.3f} | "
                     f"{p['speedup_measured']:.2f}× | {p['speedup_flops']:.2f}× | {p['measured_vs_predicted']:.3f} | "
                     f"{extra}{p['overhead_ms']:.1f} ms ({100 * p['overhead_share']:.2f}%) | "
                     f"{p['kv_cache_bytes_final'] / 2 ** 20:.1f} MB |")
    return "\n".join(lines) + "\n"

if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(table(json.load(f)))
