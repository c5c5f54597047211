"""Turn a finished Compare run (the runtime's outputs) into what the Compare tab shows:
one row of figures per run, the kept-token gallery (a row of frames per method) and the table.

TTFT here is what a user waits for before the first answer token, the engine's own ``ttft_ms``:
vision encoding + pre-LLM stages + LLM prefill (the encoding is shared by all runs on the same
frames). Speedup is the unpruned reference's prefill time over the run's, the part pruning changes;
``projected 7B speedup`` is the analytic prefill-FLOPs ratio of the same plan at real scale
(``projection``). ``correct`` marks each answer against a sample clip's known answer (first word,
the accuracy benchmark's rule) and each pruned answer against the unpruned one.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from nodes.report import si
from pruning_core.errors import VideoPruneError
from pruning_core.flops import ModelDims
from pruning_core.synthetic import first_word
from pruning_core.overlay import caption, contact_sheet, frame_retention
from pruning_core.video import frames_from_array

from . import projection
from .workflow_builder import CompareGraph

TABLE_HEADERS = ["run", "answer", "correct", "TTFT ms", "prefill ms", "prefill spread ms", "speedup ×",
                 "projected 7B speedup", "saves",
                 "kept tokens", "kept %", "eq. kept %", "prefill FLOPs", "prune ms"]
# px per column: answers first and wide enough for one word, a header never wider than its
# column's longest word (the page breaks header lines at spaces only, see demo_app.CSS)
COLUMN_WIDTHS = {"run": 190, "answer": 120, "correct": 170, "TTFT ms": 70, "prefill ms": 80,
                 "prefill spread ms": 130, "speedup ×": 85, "projected 7B speedup": 150, "saves": 200,
                 "kept tokens": 100, "kept %": 70, "eq. kept %": 80, "prefill FLOPs": 110, "prune ms": 70}
SAME, CHANGED = "same as unpruned", "changed vs unpruned"
THUMB_H = 112


def run_rows(cg: CompareGraph, outputs: Mapping[str, tuple], gold: str | None = None,
             scale: ModelDims | None = None) -> list[dict]:
    """One dict of figures per run, reference first, from the Answer nodes' results.

    ``gold``: the known answer (sample clips asked their own question), else None; ``scale``: the
    real-scale preset for the projection (default: LLaVA-OneVision-7B)."""
    scale = scale or projection.real_scale_preset("")
    rows = []
    for run in cg.runs:
        if run.answer not in outputs:
            raise VideoPruneError(f"the run produced no result for '{run.label}' (node {run.answer})")
        rec = outputs[run.answer][1]
        res = rec.result
        kept = res.kept_ids[-1]
        rows.append({
            "label": run.label,
            "reference": run.step is None,
            "method": "none" if run.step is None else run.step["method"],
            "plan": res.to_json()["plan_str"],
            "answer": res.answer,
            "vision_ms": float(res.vision_ms),
            "pre_llm_ms": float(res.pre_llm_ms),
            "prefill_ms": float(res.prefill_ms),
            "ttft_ms": float(res.ttft_ms),
            "decode_ms_per_token": float(res.decode_ms_per_token),
            "visual_tokens": int(res.visual_tokens),
            "kept_tokens": int(res.kept_tokens),
            "retention": float(res.retention),
            "equivalent_retention": float(res.equivalent_retention),
            "flops": float(res.flops),
            "flops_unpruned": float(res.flops_unpruned),
            "stage_overhead_ms": float(sum(s.overhead_ms for s in res.stages)),
            "kv_cache_bytes_final": int(res.kv_cache_bytes_final),
            "repeats": int(getattr(res, "timing_spread", {}).get("repeats", 1)),
            "prefill_spread_ms": _spread(res, "prefill_ms"),
            "ttft_spread_ms": _spread(res, "ttft_ms"),
            "frame_retention": [round(float(r), 4) for r in frame_retention(res.layout, kept)],
            "projection": projection.project(res.plan, res.layout.num_frames, int(res.text_tokens),
                                             res.tokens_per_layer, int(res.visual_tokens), scale),
        })
        rows[-1]["projected_speedup"] = rows[-1]["projection"]["speedup"]
    return with_savings(with_correctness(with_speedups(rows), gold))


def with_savings(rows: list[dict]) -> list[dict]:
    """Adds ``saves``: what a run saves against the reference, so methods that leave the prefill
    alone (SharpV memory, DyCoke's decode pruning) show their gain: prefill FLOPs and the KV cache
    kept for decoding (both exact). TPOT is not listed: it is one noisy measurement per run."""
    ref = next(r for r in rows if r.get("reference"))
    for r in rows:
        parts = []
        if r["flops"] < ref["flops"] and ref["flops"]:
            parts.append(f"prefill FLOPs −{1 - r['flops'] / ref['flops']:.0%}")
        if r["kv_cache_bytes_final"] < ref["kv_cache_bytes_final"] and ref["kv_cache_bytes_final"]:
            parts.append(f"KV cache −{1 - r['kv_cache_bytes_final'] / ref['kv_cache_bytes_final']:.0%}")
        r["saves"] = ", ".join(parts) if not r.get("reference") else ""
    return rows


def with_correctness(rows: list[dict], gold: str | None) -> list[dict]:
    """Adds ``right`` (bool, or None without a known answer), ``same_as_reference`` and the
    ``correct`` text: "right" / "wrong" when ``gold`` is known, then for a pruned run whether its
    answer equals the unpruned one's (the whole answer text, stripped)."""
    ref = next((r for r in rows if r.get("reference")), None)
    if ref is None:
        raise VideoPruneError("a comparison needs the unpruned reference run")
    for r in rows:
        r["right"] = None if gold is None else first_word(r["answer"]) == first_word(gold)
        r["same_as_reference"] = r["answer"].strip() == ref["answer"].strip()
        parts = [] if gold is None else ["✓ right" if r["right"] else "✗ wrong"]
        if not r.get("reference"):
            parts.append(SAME if r["same_as_reference"] else CHANGED)
        r["correct"] = " · ".join(parts) or "reference"
    return rows


def _spread(res: Any, name: str) -> list[float]:
    """[min, max] of a repeated timing (one run: the value itself twice)."""
    got = (getattr(res, "timing_spread", None) or {}).get(name)
    value = float(getattr(res, name))
    return [float(got["min"]), float(got["max"])] if got else [value, value]


def with_speedups(rows: list[dict]) -> list[dict]:
    """Adds ``speedup`` (prefill) and ``ttft_speedup`` against the reference row."""
    ref = next((r for r in rows if r.get("reference")), None)
    if ref is None:
        raise VideoPruneError("a comparison needs the unpruned reference run")
    for r in rows:
        r["speedup"] = ref["prefill_ms"] / r["prefill_ms"] if r["prefill_ms"] > 0 else 0.0
        r["ttft_speedup"] = ref["ttft_ms"] / r["ttft_ms"] if r["ttft_ms"] > 0 else 0.0
    return rows


def table(rows: Sequence[dict]) -> list[list[Any]]:
    """Rows for the results table, in ``TABLE_HEADERS`` order, formatted for reading."""
    out = []
    for r in rows:
        proj = r.get("projection") or {}
        projected = f"{proj['speedup']:.2f}" + (" (measured kept share)" if proj.get("basis") == "measured" else "") \
            if proj else ""
        out.append([
            r["label"], r["answer"], r.get("correct", ""), round(r["ttft_ms"], 1), round(r["prefill_ms"], 1),
            _fmt_spread(r), round(r["speedup"], 2), projected, r.get("saves", ""),
            f"{r['kept_tokens']} / {r['visual_tokens']}", round(100 * r["retention"], 1),
            round(100 * r["equivalent_retention"], 1),
            f"{si(r['flops'])} ({r['flops'] / r['flops_unpruned']:.0%})" if r["flops_unpruned"] else si(r["flops"]),
            round(r["stage_overhead_ms"], 2),
        ])
    return out


def _fmt_spread(r: Mapping[str, Any]) -> str:
    lo, hi = r.get("prefill_spread_ms") or (r["prefill_ms"], r["prefill_ms"])
    n = r.get("repeats", 1)
    return f"{lo:.1f}–{hi:.1f} (median of {n})" if n > 1 else "1 run"


def thumbnails(frames: np.ndarray, height: int = THUMB_H) -> list[np.ndarray]:
    """Frames scaled to ``height`` px (aspect kept): a row of 16 frames stays a readable width."""
    t, h, w = frames.shape[:3]
    if h == height:
        return list(frames)
    width = max(1, int(round(w * height / h)))
    interp = cv2.INTER_AREA if h > height else cv2.INTER_NEAREST  # nearest keeps token cells crisp
    return [cv2.resize(f, (width, height), interpolation=interp) for f in frames]


def overlay_rows(cg: CompareGraph, outputs: Mapping[str, tuple], rows: Sequence[dict],
                 height: int = THUMB_H) -> list[tuple[np.ndarray, str]]:
    """(image, description) per run: its Overlay node's frames side by side under a title band."""
    items = []
    for run, row in zip(cg.runs, rows):
        if run.overlay not in outputs:
            raise VideoPruneError(f"the run produced no overlay for '{run.label}' (node {run.overlay})")
        drawn = frames_from_array(outputs[run.overlay][0])
        sheet = contact_sheet(thumbnails(drawn, height), cols=drawn.shape[0], pad=2)
        band = f"{row['label']}: {row['retention']:.0%} kept"
        text = (f"{row['label']}: kept {row['kept_tokens']}/{row['visual_tokens']} "
                f"({row['retention']:.0%}), prefill {row['prefill_ms']:.0f} ms, answer: {row['answer']!r}")
        items.append((caption(sheet, band, height=22), text))
    return items


def overlay_sheet(items: Sequence[tuple[np.ndarray, str]], pad: int = 8) -> np.ndarray:
    """The gallery as one image: a row per run (reference on top), frames left to right."""
    if not items:
        raise VideoPruneError("no runs to draw")
    return contact_sheet([img for img, _ in items], cols=1, pad=pad, background=255)
