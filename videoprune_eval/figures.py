"""Per-request figures of a pruned run and their summary, as they appear beside lmms-eval's accuracy.

Every request yields one flat dict (kept tokens, retention, equivalent retention, FLOPs and their
ratio to the unpruned prefill, TTFT, prefill and vision-encode times, whether the vision
encoding came from the cache). ``summarize`` turns the dicts of all requests (gathered across
processes) into means plus the cache hit rate. ``DOC_FIGURES`` keeps the figures of the docs
this process answered, so a task's ``process_results`` (``videoprune_synthetic``) can report
them as metrics next to ``acc``.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

# (task, split, doc_id) -> figures of the request that answered it, in this process
DOC_FIGURES: dict[tuple, dict] = {}

MEAN_KEYS = ("kept_tokens", "visual_tokens", "retention", "equivalent_retention", "flops_ratio", "tflops",
             "tflops_unpruned", "ttft_ms", "prefill_ms", "vision_ms", "decode_ms_per_token")


def figures_of(result, vision_cached: bool) -> dict:
    """The figures of one engine ``Result`` (see pruning_core.result)."""
    ratio = result.flops / result.flops_unpruned if result.flops_unpruned else 1.0
    return {
        "plan": result.to_json()["plan_str"],
        "visual_tokens": int(result.visual_tokens),
        "kept_tokens": int(result.kept_tokens),
        "retention": round(float(result.retention), 6),
        "equivalent_retention": round(float(result.equivalent_retention), 6),
        "tflops": round(result.flops / 1e12, 9),
        "tflops_unpruned": round(result.flops_unpruned / 1e12, 9),
        "flops_ratio": round(float(ratio), 6),
        "ttft_ms": round(float(result.ttft_ms), 3),
        "prefill_ms": round(float(result.prefill_ms), 3),
        "vision_ms": round(float(result.vision_ms), 3),
        "vision_cached": bool(vision_cached),
        "decode_ms_per_token": round(float(result.decode_ms_per_token), 3),
        "new_tokens": len(result.tokens),
        "kv_cache_bytes": int(result.kv_cache_bytes),
    }


def combine_rounds(rounds: list[dict]) -> dict:
    """Figures of a multi-round request: FLOPs and times add up, token counts and ratios average."""
    if len(rounds) == 1:
        return dict(rounds[0])
    out = {k: _mean([r[k] for r in rounds]) for k in MEAN_KEYS if k in rounds[0]}
    for k in ("tflops", "tflops_unpruned", "ttft_ms", "prefill_ms", "vision_ms"):
        out[k] = round(sum(r[k] for r in rounds), 6)
    out["flops_ratio"] = round(out["tflops"] / out["tflops_unpruned"], 6) if out["tflops_unpruned"] else 1.0
    out["plan"] = rounds[0]["plan"]
    out["vision_cached"] = all(r["vision_cached"] for r in rounds)
    out["new_tokens"] = sum(r["new_tokens"] for r in rounds)
    out["rounds"] = len(rounds)
    return out


def _mean(values: Iterable[float]) -> float:
    vals = [float(v) for v in values]
    return round(sum(vals) / len(vals), 6) if vals else math.nan


def summarize(per_request: list[dict], encodes: int | None = None) -> dict[str, Any]:
    """Means over requests, plus the vision-encoding cache hit rate (requests served from the cache)."""
    rows = [r for r in per_request if r]
    out: dict[str, Any] = {"requests": len(rows)}
    if not rows:
        return out
    out["plan"] = rows[0].get("plan", "")
    for k in MEAN_KEYS:
        out[f"mean_{k}"] = _mean(r[k] for r in rows if k in r)
    hits = sum(bool(r.get("vision_cached")) for r in rows)
    out["vision_cache_hits"] = hits
    out["vision_cache_hit_rate"] = round(hits / len(rows), 4)
    return out


def summary_line(s: dict) -> str:
    if not s.get("requests"):
        return "videoprune: no requests"
    return (f"videoprune [{s['plan']}] over {s['requests']} requests: kept {s['mean_kept_tokens']:.1f}/"
            f"{s['mean_visual_tokens']:.1f} visual tokens (retention {s['mean_retention']:.3f}, equivalent "
            f"{s['mean_equivalent_retention']:.3f}), FLOPs ratio {s['mean_flops_ratio']:.3f} "
            f"({s['mean_tflops']:.4g} TFLOPs), TTFT {s['mean_ttft_ms']:.1f} ms, prefill {s['mean_prefill_ms']:.1f} ms, "
            f"vision cache hit rate {s['vision_cache_hit_rate']:.1%} ({s['vision_cache_hits']}/{s['requests']})")
