"""The prefill table at the papers' scale, resumable: every plan's CPU time, hardware limit, TPOT and KV bytes.

``bench/prefill.py`` holds every run of a table in one process. At 32 × 196 visual tokens an unpruned
prefill of a Qwen2-0.5B-sized LM costs ~90 s of CPU and a table of ~60 plans an hour or more, so
this driver writes each measurement to ``--out`` as it is taken and skips what is there on a rerun:

- ``none.json``: the unpruned engine run, ONE per pass over the plans, shared by every plan's
  speedup (not re-run per plan);
- ``limit_<key>.json``: the bare prefill at a per-layer count vector (``prefill.limit_prefill``), one
  run per pass, shared by the plans with the same counts (pre-LLM methods at one retention often
  agree exactly); plans that keep every token (cache-only methods) get no limit run;
- ``plan_<key>.json``: the pruned engine run, one per pass, with its decode.

A pass is: the unpruned run (if this pass has none yet), then for each plan a pruned run followed by
its limit run, so each plan's measured/limit pair is interleaved. Every run is timed in process CPU
time (``--threads 1``: the compute alone, robust to a loaded machine); the decode steps of each run
are timed apart (their CPU time is subtracted from the run's), giving TPOT in CPU time. A plan's first
run in a process is a warm-up only where a method caches per question (ShaRP's PosC bias run: its
cost is kept as ``first_run_cpu_ms``); kernels are warmed once by a short run before the first pass.
Plans that keep every token in every layer are measured in the first pass only. The engine's stage
overhead is recorded in CPU time too (``stage_cpu_ms``), so a row's distance from its limit splits
into the method's own selection compute and the rest (our bookkeeping, copies, masks: ``glue``).

    python bench/prefill_sweep.py --frames 32 --out /tmp/sweep32 --passes 2 --vision --plan "sharp:retention=0.15" ...
    python bench/prefill_sweep.py --frames 32 --out /tmp/sweep32 --collect > table.json   # prefill.py's JSON shape
    python bench/prefill_table.py table.json
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import time
import traceback

import torch

from common import build_engine, median, prepare_embeds
from prefill import cpu_speed_fields, limit_prefill


def _key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _load(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _save(path: str, obj: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


class DecodeClock:
    """Process CPU time spent in the engine's decode steps (wraps ``Engine._decode_step``), and inside the
    decoder layers' forward calls before the first decode step (``layers_ms``: the model's own prefill
    compute; the rest of a run's CPU time is the stages' and ours)."""

    def __init__(self, eng):
        self.ms = 0.0
        self.steps = 0
        self.layers_ms = 0.0
        self._in_layers = 0.0
        self._t = 0.0
        inner = eng._decode_step

        def timed(*a, **k):
            if self.steps == 0:
                self.layers_ms = self._in_layers
            c0 = time.process_time()
            try:
                return inner(*a, **k)
            finally:
                self.ms += (time.process_time() - c0) * 1000.0
                self.steps += 1
        eng._decode_step = timed

        def enter(mod, args, kwargs):
            self._t = time.process_time()

        def leave(mod, args, kwargs, out):
            self._in_layers += (time.process_time() - self._t) * 1000.0
        for lay in eng.adapter.layers:
            lay.register_forward_pre_hook(enter, with_kwargs=True)
            lay.register_forward_hook(leave, with_kwargs=True)

    def reset(self) -> None:
        self.ms, self.steps, self.layers_ms, self._in_layers = 0.0, 0, 0.0, 0.0


def timed_run(eng, prep, plan: str, clock: DecodeClock, decode: int) -> tuple[object, float, float | None]:
    """One engine run: (result, CPU ms without the decode steps, decode CPU ms per step or None);
    ``clock.layers_ms`` then holds the CPU ms inside the decoder layers during the prefill.
    The decode is fed ``decode`` + 1 fixed tokens (teacher-forced), so an EOS cannot cut it short."""
    clock.reset()
    c0 = time.process_time()
    res = eng.run(prep, plan, force_tokens=[int(prep.input_ids[0, -1])] * (max(decode, 1) + 1))
    total = (time.process_time() - c0) * 1000.0
    tpot = clock.ms / clock.steps if clock.steps else None
    return res, total - clock.ms, tpot


@contextlib.contextmanager
def cpu_clock_engine():
    """While active, the engine's own timings (stage overhead, prefill_ms) are process CPU time instead of
    wall clock: on a loaded machine wall time is mostly waiting, and a stage's CPU time is what it costs."""
    import types

    import pruning_core.engine as engine_mod
    prev = engine_mod.time
    engine_mod.time = types.SimpleNamespace(perf_counter=time.process_time)
    try:
        yield
    finally:
        engine_mod.time = prev


def sweep(args) -> None:
    with cpu_clock_engine():
        _sweep(args)


def _sweep(args) -> None:
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    meta = {"dims": args.dims, "frames": args.frames, "grid": args.grid, "threads": args.threads,
            "vision": args.vision, "decode": args.decode, "attn": args.attn}
    old = _load(os.path.join(args.out, "meta.json"))
    if old is not None and old != meta:
        sys.exit(f"{args.out} holds a sweep with other settings: {old}")
    _save(os.path.join(args.out, "meta.json"), meta)
    eng = build_engine(args.dims, attn=args.attn)
    prep = prepare_embeds(eng, args.frames, args.grid, vision=args.vision)
    full = [int(prep.input_ids.shape[1])] * eng.info.num_layers
    clock = DecodeClock(eng)
    warm: set[str] = set()
    log = lambda *a: print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)  # noqa: E731
    eng.run(prep, "random:retention=0.02", max_new_tokens=2)   # kernels warm before the first measured run
    for k in range(args.passes):
        path = os.path.join(args.out, "none.json")
        none = _load(path) or {"plan": "none", "cpu_ms_runs": [], "tpot_cpu_ms_runs": []}
        if len(none["cpu_ms_runs"]) <= k:
            res, ms, tpot = timed_run(eng, prep, None, clock, args.decode)
            none["cpu_ms_runs"].append(ms)
            none["tpot_cpu_ms_runs"].append(tpot)
            none["kv_cache_bytes"] = res.kv_cache_bytes
            _save(path, none)
            log(f"pass {k} none {ms:.0f} ms")
        for plan in args.plan:
            ppath = os.path.join(args.out, f"plan_{_key(plan)}.json")
            row = _load(ppath) or {"plan": plan, "cpu_ms_runs": [], "tpot_cpu_ms_runs": []}
            if "error" in row or len(row["cpu_ms_runs"]) > k:
                continue
            if k > 0 and row.get("tokens_per_layer") == full:
                continue   # keeps every token: its row is KV/TPOT, one pass is enough
            t0 = time.perf_counter()
            try:
                if plan not in warm and "sharp:" in f"{plan}:":
                    # ShaRP's PosC bias run is cached per question: the first run pays it once
                    _, row["first_run_cpu_ms"], _ = timed_run(eng, prep, plan, clock, args.decode)
                    warm.add(plan)
                res, ms, tpot = timed_run(eng, prep, plan, clock, args.decode)
            except Exception as e:   # a plan the method refuses here: recorded, not retried
                row["error"] = f"{type(e).__name__}: {e}"
                _save(ppath, row)
                log(f"pass {k} {plan} ERROR {row['error']}\n{traceback.format_exc(limit=3)}")
                continue
            counts = list(res.tokens_per_layer)
            row.update(kept_tokens=res.kept_tokens, retention=res.retention,
                       equivalent_retention=res.equivalent_retention, tokens_per_layer=counts,
                       attention_pairs=res.attention_pairs, flops=res.flops, flops_unpruned=res.flops_unpruned,
                       kv_cache_bytes=res.kv_cache_bytes, kv_cache_bytes_final=res.kv_cache_bytes_final,
                       stage_overhead_ms=[{"stage": f"{i}:{s.name}", "ms": s.overhead_ms} for i, s in enumerate(res.stages)],
                       stage_info=[s.to_dict()["info"] for s in res.stages if s.info])
            row["cpu_ms_runs"].append(ms)
            row["tpot_cpu_ms_runs"].append(tpot)
            if row.get("clock") != "cpu":   # earlier runs of this plan timed stages in wall clock
                row.update(clock="cpu", overhead_ms_runs=[], prefill_ms_runs=[])
            row.setdefault("overhead_ms_runs", []).append(sum(s.overhead_ms for s in res.stages))
            row.setdefault("layers_cpu_ms_runs", []).append(clock.layers_ms)
            row.setdefault("prefill_ms_runs", []).append(res.prefill_ms)
            _save(ppath, row)
            lim_ms = None
            if counts != full:
                lpath = os.path.join(args.out, f"limit_{_key(json.dumps(counts))}.json")
                lim = _load(lpath) or {"tokens_per_layer": counts, "cpu_ms_runs": []}
                if len(lim["cpu_ms_runs"]) <= k:
                    c0 = time.process_time()
                    limit_prefill(eng, prep, counts)
                    lim_ms = (time.process_time() - c0) * 1000.0
                    lim["cpu_ms_runs"].append(lim_ms)
                    _save(lpath, lim)
            log(f"pass {k} {plan} kept {res.kept_tokens} cpu {ms:.0f} ms limit "
                f"{'shared' if lim_ms is None else f'{lim_ms:.0f} ms'} tpot {tpot or 0:.1f} ms "
                f"({time.perf_counter() - t0:.0f} s wall)")


class _Res:
    """The fields of a Result that ``cpu_speed_fields`` reads, from a stored row."""

    def __init__(self, row):
        self.tokens_per_layer, self.attention_pairs = row["tokens_per_layer"], row["attention_pairs"]
        self.flops, self.flops_unpruned = row["flops"], row["flops_unpruned"]


def collect(args) -> dict:
    """The stored sweep as one bench/prefill.py-shaped JSON (plans in ``--plan`` order, or all stored)."""
    meta = _load(os.path.join(args.out, "meta.json"))
    eng = build_engine(meta["dims"], attn=meta["attn"])
    prep = prepare_embeds(eng, meta["frames"], meta["grid"])
    none = _load(os.path.join(args.out, "none.json"))
    base = none["cpu_ms_runs"]
    tpot0 = median([t for t in none["tpot_cpu_ms_runs"] if t is not None])
    rows = [{"plan": "none", "kept_tokens": prep.layout.num_tokens, "cpu_ms_runs": [round(x, 1) for x in base],
             "speedup_cpu": 1.0, "speedup_flops": 1.0, "speedup_flops_realistic": 1.0,
             "kv_cache_bytes": none.get("kv_cache_bytes"), "kv_cache_bytes_final": none.get("kv_cache_bytes"),
             "tpot_cpu_ms": round(tpot0, 2), "tpot_ratio": 1.0}]
    if args.plan:
        missing = "not measured: the sweep stopped before it"
        stored = [_load(os.path.join(args.out, f"plan_{_key(p)}.json")) or {"plan": p, "cpu_ms_runs": [], "error": missing}
                  for p in args.plan]
    else:
        stored = [_load(os.path.join(args.out, f)) for f in sorted(os.listdir(args.out)) if f.startswith("plan_")]
    skipped = []
    for row in stored:
        if row is None:
            continue
        if "error" in row or not row["cpu_ms_runs"]:
            skipped.append({"plan": row["plan"], "error": row.get("error", "not measured yet")})
            continue
        lim = _load(os.path.join(args.out, f"limit_{_key(json.dumps(row['tokens_per_layer']))}.json"))
        out = {"plan": row["plan"], "kept_tokens": row["kept_tokens"], "retention": round(row["retention"], 4),
               "equivalent_retention": round(row["equivalent_retention"], 4),
               **cpu_speed_fields(eng, prep, _Res(row), base, row["cpu_ms_runs"], lim and lim["cpu_ms_runs"]),
               "repeats": len(row["cpu_ms_runs"])}
        over = median(row["overhead_ms_runs"])
        out.update(overhead_ms=round(over, 3), overhead_share=round(over / median(row["prefill_ms_runs"]), 4),
                   kv_cache_bytes=row["kv_cache_bytes"], kv_cache_bytes_final=row["kv_cache_bytes_final"])
        out["stage_clock"] = row.get("clock", "wall")
        if row.get("layers_cpu_ms_runs") and len(row["layers_cpu_ms_runs"]) == len(row["cpu_ms_runs"]):
            # ours, measured inside the run: its CPU time outside the decoder layers and outside the stages
            ours = [c - l - o for c, l, o in zip(row["cpu_ms_runs"], row["layers_cpu_ms_runs"], row["overhead_ms_runs"])]
            out["ours_cpu_ms"] = round(median(ours), 1)
            out["ours_share"] = round(median(ours) / median(row["cpu_ms_runs"]), 4)
            # the in-run reading of measured / limit: the decoder layers' share of the run (the limit is
            # those layers at those counts, bare), free of the run-to-run noise of two separate runs
            out["layers_vs_run"] = round(median([l / c for l, c in zip(row["layers_cpu_ms_runs"], row["cpu_ms_runs"])]), 3)
        if row.get("clock") == "cpu":
            out["overhead_share"] = round(over / median(row["cpu_ms_runs"]), 4)   # of the whole pruned run
            # measured = limit + the stages' own compute + the rest (ours: bookkeeping, copies, masks)
            out["stage_cpu_ms"] = round(over, 1)
            if lim:
                glue = median(row["cpu_ms_runs"]) - median(lim["cpu_ms_runs"]) - over
                out["glue_cpu_ms"] = round(glue, 1)
                out["limit_vs_measured_without_stages"] = round(
                    median(lim["cpu_ms_runs"]) / (median(row["cpu_ms_runs"]) - over), 3)
        tp = [t for t in row["tpot_cpu_ms_runs"] if t is not None]
        if tp:
            out["tpot_cpu_ms"] = round(median(tp), 2)
            out["tpot_ratio"] = round(median(tp) / tpot0, 3) if tpot0 else None
        out["stage_info"] = row["stage_info"]
        rows.append(out)
    return {"bench": "prefill", "dims": meta["dims"], "attn": meta["attn"], "threads": meta["threads"],
            "visual_tokens": prep.layout.num_tokens, "sequence_tokens": int(prep.input_ids.shape[1]),
            "frames": meta["frames"], "grid": meta["grid"], "repeats": len(base), "vision": meta["vision"],
            "decode": meta["decode"], "time": "process CPU, decode steps timed apart", "plans": rows,
            "skipped": skipped}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="directory of the stored measurements (created; reruns resume)")
    ap.add_argument("--dims", default="qwen2-0.5b")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--grid", type=int, default=14)
    ap.add_argument("--plan", action="append", help="plan (repeatable), in the order measured")
    ap.add_argument("--passes", type=int, default=2, help="interleaved passes over the plans (= repeats)")
    ap.add_argument("--decode", type=int, default=8, help="decode steps per run (TPOT, CPU time)")
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--vision", nargs="?", const="record", choices=["record", "recompute"], default=None,
                    help="attach a SigLIP-so400m-sized vision layer (VisionZip, PruMerge, HoliTom read it)")
    ap.add_argument("--collect", action="store_true", help="print the stored sweep as prefill.py JSON; run nothing")
    ap.add_argument("--quick", action="store_true", help="tiny config, seconds")
    args = ap.parse_args(argv)
    if args.quick:
        args.dims, args.frames, args.grid = "tiny", 4, 7
    if args.collect:
        print(json.dumps(collect(args)))
        return
    if not args.plan:
        ap.error("give at least one --plan")
    sweep(args)


if __name__ == "__main__":
    main()
