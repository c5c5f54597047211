"""Profile one pruned prefill with the torch profiler: where its CPU time goes, ours vs the layers'.

Prints one JSON object: the run's CPU time and profiled duration, the share spent inside the decoder layers
(the model's own compute, which only fewer tokens can shrink) and outside them (our stages and
bookkeeping: scoring, index_select/contiguous copies, masks, cos/sin gathers), and the top operators
by self CPU time, each split into inside/outside the layers. A stage's own passes through decoder
layers (ShaRP's all-black reference run) count as inside: they are the method's compute, not glue. ``--trace PATH`` also writes a Chrome
trace (open in chrome://tracing or https://ui.perfetto.dev); nothing is written otherwise.

    python bench/profile_prefill.py --plan "sharp:retention=0.15" --frames 32      # the papers' scale
    python bench/profile_prefill.py --quick --plan "hieravid:retention=0.15"        # tiny config, seconds
    python bench/profile_prefill.py --plan fastv --top 40 --trace /tmp/fastv.json

py-spy gives the Python-side view of the same run (every Python frame, no instrumentation):
    py-spy record -o /tmp/prefill.svg -- python bench/profile_prefill.py --plan sharp --no-profiler
"""
from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from common import build_engine, prepare_embeds

LAYER_LABEL = "decoder_layer"
RUN_LABEL = "engine_run"


@contextlib.contextmanager
def labelled_layers(layers):
    """Wrap every decoder layer's forward in a profiler range named ``decoder_layer``."""
    handles, open_ranges = [], []

    def enter(mod, args, kwargs):
        r = record_function(LAYER_LABEL)
        r.__enter__()
        open_ranges.append(r)

    def leave(mod, args, kwargs, out):
        open_ranges.pop().__exit__(None, None, None)

    for lay in layers:
        handles.append(lay.register_forward_pre_hook(enter, with_kwargs=True))
        handles.append(lay.register_forward_hook(leave, with_kwargs=True))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _inside_layers(events) -> set[int]:
    """Ids of the events that run (transitively) under a ``decoder_layer`` range."""
    inside: set[int] = set()
    for ev in events:
        if ev.name == LAYER_LABEL:
            stack = list(ev.cpu_children)
            while stack:
                c = stack.pop()
                inside.add(c.id)
                stack.extend(c.cpu_children)
    return inside


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    eng = build_engine(args.dims)
    prep = prepare_embeds(eng, args.frames, args.grid)
    eng.run(prep, args.plan, max_new_tokens=1)   # warm-up: first-call allocations, one-off bias runs
    if not args.profiler:
        c0 = time.process_time()
        eng.run(prep, args.plan, max_new_tokens=1)
        return {"bench": "profile_prefill", "plan": args.plan, "cpu_ms": round((time.process_time() - c0) * 1e3, 1)}
    c0 = time.process_time()
    with labelled_layers(eng.adapter.layers), profile(activities=[ProfilerActivity.CPU]) as prof:
        with record_function(RUN_LABEL):
            res = eng.run(prep, args.plan, max_new_tokens=1)
    cpu_ms = (time.process_time() - c0) * 1e3
    if args.trace:
        prof.export_chrome_trace(args.trace)
    events = prof.events()
    inside = _inside_layers(events)
    # range durations (Python between operators included), not sums of operator self times
    layer_ms = sum(ev.cpu_time_total for ev in events if ev.name == LAYER_LABEL) / 1e3
    run_ms = sum(ev.cpu_time_total for ev in events if ev.name == RUN_LABEL) / 1e3
    ops: dict[str, dict] = {}
    for ev in events:
        if ev.name in (LAYER_LABEL, RUN_LABEL):
            continue
        row = ops.setdefault(ev.name, {"op": ev.name, "self_ms": 0.0, "outside_layers_ms": 0.0, "calls": 0})
        ms = ev.self_cpu_time_total / 1e3
        row["self_ms"] += ms
        row["calls"] += 1
        if ev.id not in inside:
            row["outside_layers_ms"] += ms
    top = sorted(ops.values(), key=lambda r: -r["self_ms"])[:args.top]
    return {
        "bench": "profile_prefill", "dims": args.dims, "plan": args.plan, "frames": args.frames, "grid": args.grid,
        "threads": args.threads, "kept_tokens": res.kept_tokens, "tokens_per_layer": res.tokens_per_layer,
        "cpu_ms": round(cpu_ms, 1), "profiled_run_ms": round(run_ms, 1),
        "inside_layers_ms": round(layer_ms, 1), "outside_layers_ms": round(run_ms - layer_ms, 1),
        "outside_share": round((run_ms - layer_ms) / run_ms, 4) if run_ms else None,
        "top_ops": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()} for r in top],
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plan", default="sharp:retention=0.15")
    ap.add_argument("--dims", default="qwen2-0.5b")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--grid", type=int, default=14)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--top", type=int, default=25, help="operators listed, by self CPU time")
    ap.add_argument("--trace", help="also write a Chrome trace to this path")
    ap.add_argument("--no-profiler", dest="profiler", action="store_false",
                    help="run the plan once unprofiled (for py-spy, or a CPU time without profiler overhead)")
    ap.add_argument("--quick", action="store_true", help="tiny config, finishes in seconds")
    args = ap.parse_args(argv)
    if args.quick:
        args.dims, args.frames, args.grid = "tiny", 4, 7
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()
