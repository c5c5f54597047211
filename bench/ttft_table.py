"""Markdown tables of ``bench/ttft.py`` JSON lines (docs/RESULTS.md "TTFT with vision").

    python bench/ttft_table.py towers.jsonl ...      # every file's vision_tower, ttft and ttft_flops_share lines
    python bench/ttft_table.py --retention 0.15 ...  # TTFT rows: the unpruned one and plans at retention 0.15
"""
from __future__ import annotations

import json
import sys


def read_lines(paths: list[str]) -> list[dict]:
    rows = []
    for p in paths:
        with open(p) as f:
            rows += [json.loads(x) for x in f if x.startswith("{")]
    return rows


def _s(ms: float) -> str:
    return f"{ms / 1000:.1f}"


def _markdown(header: list[str], cells: list[list], key=None) -> str:
    """A markdown table; rows whose ``key`` repeats an earlier one are dropped (a ttft.py run with
    --tower-json prints the tower line it read again)."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    seen = set()
    for k, row in zip(key or range(len(cells)), cells):
        if k not in seen:
            seen.add(k)
            out.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(out)


def _geometry(r: dict) -> str:
    if "grid_thw" in r:
        t, h, w = r["grid_thw"]
        return f"{r['input_px'][0]}×{r['input_px'][1]} → {r['frame_px'][0]}×{r['frame_px'][1]} px, {t}×{h}×{w} patches"
    return f"{r['frame_px'][0]} px, {r['patches_per_frame']} patches/frame"


def tower_table(rows: list[dict]) -> str:
    runs = ["" if r["repeats"] == 1 else f" (median of {r['repeats']})" for r in rows]
    return _markdown(["tower", "frames", "geometry", "GFLOP", "model loaded with", "stock CPU s", "ours CPU s",
                      "ours / stock", "max abs diff"],
                     [[r["tower"], r["frames"], _geometry(r), f"{r['gflop']:,.0f}", r["attn"], _s(r["stock_cpu_ms"]) + n,
                       _s(r["ours_cpu_ms"]), f"{r['ours_vs_stock']:.3f}", f"{r['max_abs_diff']:.1e}"]
                      for r, n in zip(rows, runs)],
                     [(r["tower"], r["frames"], r["attn"], r["stock_cpu_ms"]) for r in rows])


def ttft_table(rows: list[dict]) -> str:
    return _markdown(["plan", "kept", "vision s", "stages + prefill s", "TTFT s", "prefill speedup", "TTFT speedup",
                      "vision share"],
                     [[f"`{r['plan']}`", r["kept_tokens"], _s(r["vision_cpu_ms"]), _s(r["stages_prefill_cpu_ms"]),
                       _s(r["ttft_cpu_ms"]), f"{r['speedup_prefill']:.2f}×", f"{r['speedup_ttft']:.2f}×",
                       f"{100 * r['vision_share']:.0f}%"] for r in rows])


def share_table(rows: list[dict]) -> str:
    return _markdown(["LM", "frames", "sequence tokens", "vision TFLOP", "unpruned prefill TFLOP", "vision share",
                      "share pruning can touch"],
                     [[r["lm"], r["frames"], r["sequence_tokens"], r["vision_tflop"], r["prefill_tflop"],
                       f"{100 * r['vision_share_flops']:.0f}%", f"{100 * r['prunable_share_flops']:.0f}%"] for r in rows],
                     [(r["lm"], r["frames"], r["sequence_tokens"]) for r in rows])


def main(argv=None) -> None:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--retention", help="TTFT rows of plans with retention=R only (and the unpruned row)")
    args = ap.parse_args(argv)
    rows = read_lines(args.files)
    if args.retention:
        rows = [r for r in rows if r.get("bench") != "ttft" or r["plan"] == "none"
                or f"retention={args.retention}" in r["plan"].replace("target_retention", "retention")]
    for kind, fn in (("vision_tower", tower_table), ("ttft", ttft_table), ("ttft_flops_share", share_table)):
        got = [r for r in rows if r.get("bench") == kind]
        if got:
            print(fn(got) + "\n")


if __name__ == "__main__":
    main()
