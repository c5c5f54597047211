"""The Compare tab's charts as RGB images: a latency bar chart and a retention-vs-time scatter.

Figures are built on matplotlib's object API with the Agg canvas (no pyplot global state), so
concurrent requests can draw at the same time.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

VISION = "#9aa5b1"
PREFILL = "#3c78dc"
PRE_LLM = "#e0a040"
REFERENCE = "#444444"
PREDICTED = "#f0a000"


def _to_rgb(fig: Figure) -> np.ndarray:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])


def _check(rows: Sequence[dict]) -> None:
    if not rows:
        raise ValueError("a chart needs at least one run")


def latency_chart(rows: Sequence[dict], width_in: float = 7.5) -> np.ndarray:
    """Horizontal bars, one per run: time to first token split into vision encoding, pre-LLM stages and LLM
    prefill, labelled with the prefill speedup against the unpruned reference."""
    _check(rows)
    n = len(rows)
    fig = Figure(figsize=(width_in, 1.0 + 0.45 * n), dpi=100)
    ax = fig.add_subplot()
    y = np.arange(n)[::-1]
    vision = np.array([float(r.get("vision_ms") or 0.0) for r in rows])
    pre = np.array([float(r.get("pre_llm_ms") or 0.0) for r in rows])
    prefill = np.array([float(r.get("prefill_ms") or 0.0) for r in rows])
    ax.barh(y, vision, color=VISION, label="vision encode")
    ax.barh(y, pre, left=vision, color=PRE_LLM, label="pre-LLM stages")
    ax.barh(y, prefill, left=vision + pre, color=PREFILL, label="LLM prefill")
    ttft = vision + pre + prefill
    top = float(ttft.max()) or 1.0
    for yi, r, t in zip(y, rows, ttft):
        ax.text(t + 0.01 * top, yi, f"{t:.0f} ms · {float(r.get('speedup') or 0):.2f}× prefill",
                va="center", fontsize=8)
    labels = [_short(r["label"]) for r in rows]
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlim(0, top * 1.45)
    ax.set_xlabel("time to first token (ms)")
    # above the bars, not over the longest bar's label
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=3, fontsize=7, frameon=False, borderaxespad=0.2)
    ax.spines[["top", "right"]].set_visible(False)
    height_in = fig.get_figheight()
    fig.subplots_adjust(left=_label_margin(labels, width_in, 8), right=0.98, top=1 - 0.3 / height_in,
                        bottom=0.5 / height_in)
    return _to_rgb(fig)


def retention_scatter(rows: Sequence[dict], width_in: float = 6.0) -> np.ndarray:
    """Measured LLM prefill time against visual-token retention, one point per run, next to the
    time the FLOPs predict (reference time × FLOPs ratio): how much of the saving is real."""
    _check(rows)
    fig = Figure(figsize=(width_in, 4.0), dpi=100)
    ax = fig.add_subplot()
    ref = next((r for r in rows if r.get("reference")), rows[0])
    ref_ms = float(ref.get("prefill_ms") or 0.0)
    top = 0.0
    for r in rows:
        x = 100.0 * float(r.get("retention") or 0.0)
        y = float(r.get("prefill_ms") or 0.0)
        is_ref = bool(r.get("reference"))
        top = max(top, y)
        ax.scatter([x], [y], s=48, color=REFERENCE if is_ref else PREFILL, zorder=3,
                   marker="s" if is_ref else "o")
        ax.annotate(_short(r["label"], 22), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
        unpruned = float(r.get("flops_unpruned") or 0.0)
        if not is_ref and unpruned > 0 and ref_ms > 0:
            pred = ref_ms * float(r.get("flops") or 0.0) / unpruned
            top = max(top, pred)
            ax.scatter([x], [pred], s=40, facecolors="none", edgecolors=PREDICTED, zorder=2)
            ax.plot([x, x], [pred, y], color=PREDICTED, lw=0.8, alpha=0.6, zorder=1)
    ax.scatter([], [], s=40, facecolors="none", edgecolors=PREDICTED, label="FLOPs-predicted")
    ax.scatter([], [], s=48, color=PREFILL, label="measured")
    ax.set_xlim(0, 105)
    ax.set_ylim(0, (top or 1.0) * 1.3)   # head room for the labels and the legend
    ax.set_xlabel("visual tokens kept (% of original)")
    ax.set_ylabel("LLM prefill (ms)")
    ax.legend(loc="best", fontsize=7, framealpha=0.8)
    ax.grid(alpha=0.25)
    ax.spines[["top", "right"]].set_visible(False)
    fig.subplots_adjust(left=0.11, right=0.97, top=0.96, bottom=0.13)
    return _to_rgb(fig)


def _label_margin(labels: Sequence[str], width_in: float, fontsize: float) -> float:
    """The left margin (figure fraction) that fits the longest tick label, estimated from its length:
    fixed margins instead of ``tight_layout``, which lays every text out again (~0.3 s a chart here)."""
    chars = max((len(t) for t in labels), default=1)
    return min(0.5, (0.2 + chars * fontsize * 0.62 / 72) / width_in)


def _short(text: str, n: int = 30) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
