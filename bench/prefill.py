"""Prefill benchmark: unpruned vs pruned plans on a preset-sized LM (random weights), in one process.

Prints one JSON object: per plan the median prefill time (runs interleaved with the unpruned
reference), measured speedup (from medians, and from minima, the better estimate on a shared
machine) and FLOPs-predicted speedup, per-stage overhead and its share of the pruned
prefill, peak tensor memory, KV-cache bytes, and optionally decode time per token. Each run's
process CPU time is recorded too (``speedup_cpu``): with ``--threads 1`` it is the compute alone,
so its ratios hold on a loaded machine where wall-clock times are mostly waiting.

Beside eq. 12's ``speedup_flops`` each row has ``speedup_flops_realistic`` (``flops.realistic_prefill_flops``:
GQA's narrow k/v, SwiGLU's three matrices, causal attention) and, unless ``--no-limit``, the hardware
limit: ``speedup_limit`` is the unpruned run's CPU time over a bare prefill fed exactly the plan's
per-layer token counts (``limit_prefill``; nothing that prunes to those counts can be faster), and
``measured_vs_limit`` = that bare prefill's CPU time / the pruned run's (1.0: no overhead of ours).

    python bench/prefill.py                       # qwen2-0.5b dims, 8x196 visual tokens, FastV L2 25%
    python bench/prefill.py --plan "sharp:retention=0.15" --plan "fastv:layer=2,retention=0.25"
    python bench/prefill.py --quick               # tiny config, seconds
    python bench/prefill.py --matched-flops 0.25 --plan fastv --plan sharp --plan pdrop   # same prefill FLOPs

``--matched-flops R`` replaces every single-method ``--plan`` by the same method with its knob solved
(``pruning_core.matching``) so that its equivalent retention on this input is R: analytically from
the model's dims where the kept counts are data-free, else measured on the input. A plan that
cannot reach R is listed under ``unmatched`` with the reason.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from common import PeakTensorMemory, build_engine, median, prepare_embeds
from pruning_core.flops import realistic_prefill_flops


def matched_plans(eng, prep, plans: list[str], target: float) -> tuple[list[str], list[dict]]:
    """Each single-step plan with its knob solved for equivalent retention ``target`` on ``prep``."""
    from pruning_core.errors import PlanError
    from pruning_core.matching import analytic_measure, engine_measure, match_step
    from pruning_core.registry import format_plan, parse_plan
    n = prep.layout.num_tokens
    n_text = int(prep.input_ids.shape[1]) - n
    out, unmatched = [], []
    for p in plans:
        steps = parse_plan(p)
        try:
            if len(steps) != 1:
                raise PlanError("--matched-flops solves single-method plans only")
            try:
                got = match_step(steps[0], target, analytic_measure(eng.info, n, n_text))
            except PlanError as e:
                if "depend on the video" not in str(e):
                    raise
                got = match_step(steps[0], target, engine_measure(eng, [prep]))
            out.append(format_plan([got.step]))
        except PlanError as e:
            unmatched.append({"plan": p, "error": str(e)})
    return out, unmatched


@torch.no_grad()
def limit_prefill(eng, prep, tokens_per_layer: list[int]) -> float:
    """The hardware limit of a plan: an unpruned prefill fed exactly ``tokens_per_layer`` (kept rows
    given in advance: the sequence's last ``n`` rows, so the question is kept; which rows is free,
    the cost only depends on the counts). No scoring, no stage, no provenance bookkeeping: one
    contiguous copy of hidden/cos/sin where the count drops, then the layers, norm and lm_head of
    the last row, with a KV cache as a real prefill fills. Nothing that prunes to these counts can
    be faster. (DeepStack's per-layer row additions, O(n·d), are not replayed.) Returns the logits."""
    from transformers import DynamicCache
    ad = eng.adapter
    hidden = prep.embeds
    cos, sin = ad.rotary_emb(hidden, prep.position_ids)
    cache = DynamicCache(config=ad.model.config.get_text_config())
    eager = eng.info.attn_impl == "eager"
    for i, n in enumerate(tokens_per_layer):
        if n != hidden.shape[1]:
            hidden, cos, sin = (t[:, -n:].contiguous() for t in (hidden, cos, sin))
        mask = None
        if eager:
            mask = torch.full((n, n), torch.finfo(hidden.dtype).min, dtype=hidden.dtype).triu_(1).view(1, 1, n, n)
        out = ad.layers[i](hidden, attention_mask=mask, position_embeddings=(cos, sin), position_ids=None,
                           past_key_values=cache, use_cache=True)
        hidden = out[0] if isinstance(out, tuple) else out
    return ad.lm_head(ad.norm(hidden[:, -1:]))[0, -1].float()


def cpu_speed_fields(eng, prep, res, base_cpu: list[float], cpu: list[float], limit_cpu: list[float] | None) -> dict:
    """A row's CPU-time speedup beside eq. 12, the realistic FLOPs count and (with ``limit_cpu``) the
    hardware limit: ``base_cpu`` / ``cpu`` / ``limit_cpu`` are the unpruned run's, the plan's and the
    bare prefill's (at the plan's counts) process CPU times in ms."""
    row = {"cpu_ms_runs": [round(x, 1) for x in cpu],
           "speedup_cpu": round(median(base_cpu) / median(cpu), 3),
           "speedup_flops": round(res.flops_unpruned / res.flops, 3)}
    row["cpu_vs_predicted"] = round(row["speedup_cpu"] / row["speedup_flops"], 3)
    f_real = realistic_prefill_flops(res.tokens_per_layer, eng.info, res.attention_pairs)
    f_real0 = realistic_prefill_flops([int(prep.input_ids.shape[1])] * eng.info.num_layers, eng.info)
    row["speedup_flops_realistic"] = round(f_real0 / f_real, 3)
    row["cpu_vs_realistic"] = round(row["speedup_cpu"] / row["speedup_flops_realistic"], 3)
    if limit_cpu:
        # limit: the unpruned engine run's CPU time over the bare prefill at this plan's counts;
        # measured_vs_limit = how close the pruned run (stages, bookkeeping included) comes to it
        row["limit_cpu_ms_runs"] = [round(x, 1) for x in limit_cpu]
        row["speedup_limit"] = round(median(base_cpu) / median(limit_cpu), 3)
        row["measured_vs_limit"] = round(median(limit_cpu) / median(cpu), 3)
    return row


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    eng = build_engine(args.dims, attn=args.attn)
    prep = prepare_embeds(eng, args.frames, args.grid, vision=args.vision)
    plans = args.plan or ["fastv:layer=2,retention=0.25"]
    unmatched: list[dict] = []
    matched = getattr(args, "matched_flops", None)   # callers may pass a Namespace without it
    if matched is not None:
        plans, unmatched = matched_plans(eng, prep, plans, matched)
    all_plans = ["none"] + plans
    # warm-up (first-call allocations and kernels); the cold run's stage overhead includes one-off
    # work such as ShaRP's PosC bias run, which every new question pays once (its key has the prompt)
    first_over, counts = {}, {}
    for p in all_plans:
        r0 = eng.run(prep, p, max_new_tokens=1)
        first_over[p] = sum(s.overhead_ms for s in r0.stages)
        counts[p] = list(r0.tokens_per_layer)
    times: dict[str, list[float]] = {p: [] for p in all_plans}
    cpu: dict[str, list[float]] = {p: [] for p in all_plans}   # process CPU time: robust to a loaded machine
    overheads: dict[str, list[dict]] = {p: [] for p in all_plans}
    limit_cpu: dict[str, list[float]] = {p: [] for p in all_plans}
    last = {}
    for _ in range(args.repeats):
        for p in all_plans:  # interleaved so drifts of the shared machine hit every plan alike
            c0 = time.process_time()
            res = eng.run(prep, p, max_new_tokens=1)
            cpu[p].append((time.process_time() - c0) * 1000.0)
            if args.limit:
                c0 = time.process_time()
                limit_prefill(eng, prep, counts[p])
                limit_cpu[p].append((time.process_time() - c0) * 1000.0)
            times[p].append(res.prefill_ms)
            overheads[p].append({f"{i}:{s.name}": s.overhead_ms for i, s in enumerate(res.stages)})
            last[p] = res
    out_plans = []
    base_ms = median(times["none"])
    base_min = min(times["none"])
    for p in all_plans:
        res = last[p]
        ms = median(times[p])
        stage_ms = {k: median([o[k] for o in overheads[p]]) for k in (overheads[p][0] if overheads[p] else {})}
        total_over = sum(stage_ms.values())
        mem = PeakTensorMemory()
        if args.memory:
            with mem:
                eng.run(prep, p, max_new_tokens=1)
        row = {
            "plan": p,
            "prefill_ms": round(ms, 2),
            "prefill_ms_runs": [round(x, 2) for x in times[p]],
            "kept_tokens": res.kept_tokens,
            "retention": round(res.retention, 4),
            "equivalent_retention": round(res.equivalent_retention, 4),
            "speedup_measured": round(base_ms / ms, 3) if ms else None,
            "speedup_measured_min": round(base_min / min(times[p]), 3),
            "speedup_flops": round(res.flops_unpruned / res.flops, 3),
            "stage_overhead_ms": {k: round(v, 3) for k, v in stage_ms.items()},
            "overhead_ms": round(total_over, 3),
            "first_run_overhead_ms": round(first_over[p], 3),
            "overhead_share": round(total_over / ms, 4) if ms else None,
            "peak_tensor_mb": round(mem.peak / 2**20, 1) if args.memory else None,
            "kv_cache_bytes": res.kv_cache_bytes,
            "kv_cache_bytes_final": res.kv_cache_bytes_final,
            "stage_info": [s.to_dict()["info"] for s in res.stages if s.info],
        }
        row["measured_vs_predicted"] = round(row["speedup_measured"] / row["speedup_flops"], 3) if ms else None
        row["measured_vs_predicted_min"] = round(row["speedup_measured_min"] / row["speedup_flops"], 3)
        row.update(cpu_speed_fields(eng, prep, res, cpu["none"], cpu[p], limit_cpu[p] if args.limit else None))
        if args.decode:
            tp = []
            for _ in range(max(1, args.repeats // 2)):
                r = eng.run(prep, p, max_new_tokens=args.decode + 1)
                tp.append(r.decode_ms_per_token)
            row["decode_ms_per_token"] = round(median(tp), 3)
        out_plans.append(row)
    if args.decode:
        ref = out_plans[0]["decode_ms_per_token"]
        for r in out_plans:
            r["tpot_ratio"] = round(r["decode_ms_per_token"] / ref, 3) if ref else None
    return {
        "bench": "prefill", "dims": args.dims, "attn": args.attn, "threads": args.threads,
        "visual_tokens": prep.layout.num_tokens, "sequence_tokens": int(prep.input_ids.shape[1]),
        "frames": args.frames, "grid": args.grid, "repeats": args.repeats, "vision": args.vision,
        "plans": out_plans, "wall_s": round(time.perf_counter() - t0, 1),
        **({"matched_flops": matched, "unmatched": unmatched} if matched is not None else {}),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", default="qwen2-0.5b",
                    help="LM dims preset: qwen2-0.5b, qwen2-1.5b, tiny (LLaVA-OV); qwen3-vl-2b, qwen3-tiny (Qwen3-VL "
                         "with DeepStack; --frames then counts temporal steps)")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--grid", type=int, default=14, help="tokens per frame side (LLaVA-OV: 14)")
    ap.add_argument("--plan", action="append", help="plan to compare with the unpruned run (repeatable)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--matched-flops", type=float, metavar="R",
                    help="solve each --plan's knob so its equivalent retention is R (FLOPs-matched rows)")
    ap.add_argument("--decode", type=int, default=0, help="also time this many decode steps (TPOT)")
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--no-memory", dest="memory", action="store_false",
                    help="skip the extra run per plan that records peak tensor memory")
    ap.add_argument("--no-limit", dest="limit", action="store_false",
                    help="skip the hardware-limit runs (an unpruned prefill fed each plan's per-layer counts)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="tiny config, finishes in seconds")
    ap.add_argument("--vision", nargs="?", const="record", choices=["record", "recompute"], default=None,
                    help="attach a SigLIP-so400m-sized vision layer, for methods that read the vision attention "
                    "(visionzip, prumerge, holitom); 'recompute': without the q/k projections recorded during the "
                    "encode, so the methods recompute them (the cost before the recorder)")
    args = ap.parse_args(argv)
    if args.quick:
        args.dims, args.frames, args.grid, args.repeats = "tiny", 4, 7, 3
    if args.matched_flops is not None and not 0 < args.matched_flops <= 1:
        ap.error("--matched-flops must be an equivalent retention in (0, 1]")
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()
