"""The Compare tab's readable overlays: a frame viewer, a per-frame retention timeline and a
Pareto view of the accuracy benchmark, each a pure function of a finished run.

* ``collect`` (or ``from_results``) keeps, per run, what drawing needs: the kept ORIGINAL ids of
  the last stage, the token layout, each frame's kept share and the segment starts the stages
  recorded (ShaRP's SegM ``segment_of_frame``, HieraVid's ``segments``), plus the frames the model saw.
* ``frame_view`` draws one frame for every run side by side at full size (enlarged by a whole
  factor when small) with each kept cell outlined and pruned cells dimmed, captioned with the run
  and the frame's kept share; ``frame_panels`` gives the same panels one by one (for a gallery).
* ``timeline_chart``: kept share per frame, a line per pruned run, its segment starts marked.
* ``pareto_chart``: accuracy against equivalent retention (the constant visual share with the same
  prefill FLOPs) from the accuracy benchmark's JSON (``bench/accuracy.py`` writes
  ``docs/accuracy.json`` and ``docs/accuracy_matched.json``), the frontier over all methods, and
  the current run's points on it.
* ``record_scores`` / ``heat_for``: optional score heatmaps (FastV/ShaRP last-token attention, ShaRP
  after PosC, SharpV importance, HieraVid relevance), from a re-run of each plan with the engine's
  ``record_scores`` on: asked for only when the user wants them, so a normal run pays nothing.
* ``sheet_height``: thumbnail height that keeps the all-frames overlay sheet small enough to
  encode quickly (the browser receives it as WebP).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from pruning_core.errors import VideoPruneError
from pruning_core.layout import TokenLayout
from pruning_core.overlay import KEPT_COLOR, caption, contact_sheet, frame_retention, frame_view as draw_frame, \
    source_to_layout_frames

from .charts import _to_rgb

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = (REPO_ROOT / "docs" / "accuracy.json", REPO_ROOT / "docs" / "accuracy_matched.json")
MIN_SIDE = 336               # frames smaller than this are enlarged by a whole factor in the viewer
SHEET_PIXELS = 1_000_000     # the all-frames sheet's thumbnails: ~0.2-0.3 s of WebP encoding here (7.2 MP: ~1.0-1.5 s)
SHEET_MIN_H, SHEET_MAX_H = 40, 112
HEAT_OUTLINE = (0, 230, 255)  # kept cells over a heatmap: cyan, apart from the inferno map's yellows
COLORS = ("#3c78dc", "#e0a040", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
          "#bcbd22", "#7f7f7f")


class ViewerError(VideoPruneError):
    """A run result or a benchmark file the viewer cannot draw; one line for the UI."""


# ---------------------------------------------------------------- what a run leaves

@dataclass(frozen=True)
class ViewRun:
    """One run as the viewer needs it (all ids are ORIGINAL visual ids of ``layout``)."""

    label: str
    reference: bool
    method: str
    layout: TokenLayout
    kept_ids: np.ndarray                     # [k] kept after the last stage, ascending
    frame_retention: np.ndarray              # [F] kept / tokens per layout frame
    segments: dict[str, list[int]] = field(default_factory=dict)   # "ShaRP SegM" -> layout-frame starts
    equivalent_retention: float = 1.0
    plan: list[dict] = field(default_factory=list)
    positions: str = "original"

    def kept_in_frame(self, layout_frame: int) -> int:
        return int(round(float(self.frame_retention[layout_frame]) * self.layout.tokens_per_frame))

    def segment_of(self, layout_frame: int) -> dict[str, int]:
        """Index of the segment holding ``layout_frame``, per segmentation."""
        return {name: int(np.searchsorted(starts, layout_frame, side="right")) - 1
                for name, starts in self.segments.items()}


@dataclass
class Viewer:
    """The frames every run saw and the runs, reference first."""

    frames: np.ndarray                       # [T, H, W, 3] uint8
    runs: list[ViewRun]
    question: str = ""

    @property
    def num_frames(self) -> int:
        """Source frames: the viewer's frame index runs over 0..num_frames-1."""
        return int(self.frames.shape[0])

    def layout_frame(self, index: int) -> int:
        """The layout frame source frame ``index`` shows (Qwen2-VL: its temporal pair)."""
        if not 0 <= index < self.num_frames:
            raise ViewerError(f"frame {index} is outside 0..{self.num_frames - 1}")
        return int(source_to_layout_frames(self.num_frames, self.runs[0].layout)[index])


_SEGMENTERS = {"sharp": "ShaRP SegM", "hieravid": "HieraVid", "hieravid_merge": "HieraVid merge"}


def segment_starts(result: Any) -> dict[str, list[int]]:
    """Segment starts (layout frames, ascending, beginning at 0) the run's stages recorded.

    ShaRP records ``segment_of_frame`` (segment per frame, -1 for frames with no alive token);
    HieraVid's pre stage and HieraVid merge record ``segments`` (start frames). A method run twice
    in one plan keeps the first stage's segmentation (HieraVid's layer stages reuse it)."""
    out: dict[str, list[int]] = {}
    for st in getattr(result, "stages", []) or []:
        info = st.info or {}
        name = _SEGMENTERS.get(st.name, st.name)
        if name in out:
            continue
        if isinstance(info.get("segment_of_frame"), list):
            seg = np.asarray(info["segment_of_frame"])
            frames = np.nonzero(seg >= 0)[0]
            if frames.size:
                v = seg[frames]
                out[name] = [int(f) for f, new in zip(frames, np.r_[True, v[1:] != v[:-1]]) if new]
        elif isinstance(info.get("segments"), list) and info["segments"]:
            out[name] = sorted(int(s) for s in info["segments"])
    return out


def view_run(label: str, result: Any) -> ViewRun:
    """A ``pruning_core.result.Result`` as a ``ViewRun``."""
    kept = result.kept_ids[-1]
    ids = np.asarray(kept.cpu() if hasattr(kept, "cpu") else kept, dtype=np.int64).reshape(-1)
    plan = list(getattr(result, "plan", []) or [])
    return ViewRun(label=label, reference=not plan, method="+".join(s["method"] for s in plan) or "none",
                   layout=result.layout, kept_ids=ids, frame_retention=frame_retention(result.layout, ids),
                   segments=segment_starts(result), equivalent_retention=float(result.equivalent_retention),
                   plan=plan, positions=str(getattr(result, "positions", "original")))


def from_results(frames: np.ndarray, results: Sequence[tuple[str, Any]], question: str = "") -> Viewer:
    """A ``Viewer`` from the frames the runs saw and (label, Result) pairs, reference first."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.dtype != np.uint8:
        raise ViewerError(f"the viewer needs uint8 frames [T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    if not results:
        raise ViewerError("the viewer needs at least one run")
    runs = [view_run(label, res) for label, res in results]
    for r in runs:
        if r.layout != runs[0].layout:
            raise ViewerError(f"'{r.label}' ran on another token layout than '{runs[0].label}'")
    source_to_layout_frames(frames.shape[0], runs[0].layout)   # the frames must be the ones the runs saw
    return Viewer(frames, runs, question)


def collect(cg: Any, outputs: Mapping[str, tuple]) -> Viewer:
    """The ``Viewer`` of a finished Compare graph (``workflow_builder.CompareGraph``) from the
    runtime's outputs: each run's Answer node gives its ``RunRecord`` (frames, result, question)."""
    recs = []
    for run in cg.runs:
        if run.answer not in outputs:
            raise ViewerError(f"the run produced no result for '{run.label}' (node {run.answer})")
        recs.append((run.label, outputs[run.answer][1]))
    first = recs[0][1]
    return from_results(first.frames, [(label, rec.result) for label, rec in recs], getattr(first, "question", ""))


# ---------------------------------------------------------------- the frame viewer

def display_scale(height: int, width: int, min_side: int = MIN_SIDE) -> int:
    """Whole enlargement factor so the frame's short side reaches ``min_side`` (1: already that big)."""
    return max(1, int(min_side) // max(1, min(int(height), int(width))))


def rank_heat(values: np.ndarray) -> np.ndarray:
    """Scores [n] (NaN = not scored) as their rank among the scored ones, in [0, 1]: attention is
    so peaked (a few sink tokens) that a linear scale would show one bright cell and black."""
    v = np.asarray(values, np.float64).reshape(-1)
    out = np.full(v.shape, np.nan)
    ok = ~np.isnan(v)
    n = int(ok.sum())
    if n:
        order = np.argsort(np.argsort(v[ok], kind="stable"), kind="stable")
        out[ok] = order / max(n - 1, 1)
    return out


def frame_panels(viewer: Viewer, index: int, min_side: int = MIN_SIDE, dim: float = 0.3,
                 heat: Mapping[str, np.ndarray] | None = None) -> list[tuple[np.ndarray, str]]:
    """(image, caption text) per run for source frame ``index``: the frame at full size (enlarged by
    ``display_scale``), pruned cells dimmed, every kept cell outlined, under a two-line band: the
    run's label, then the frame's kept tokens and share (and its segment where the run has one).

    ``heat``: optional scores per run label, [num_tokens] over ORIGINAL ids (NaN = not scored); a
    run with scores is tinted by their rank (``rank_heat``), its pruned cells are not dimmed and its
    kept cells are outlined in cyan (``HEAT_OUTLINE``)."""
    lf = viewer.layout_frame(index)
    h, w = viewer.frames.shape[1:3]
    scale = display_scale(h, w, min_side)
    out = []
    for run in viewer.runs:
        tpf = run.layout.tokens_per_frame
        tint = None
        if heat is not None and run.label in heat:
            scores = np.asarray(heat[run.label], np.float64).reshape(-1)
            if scores.size != run.layout.num_tokens:
                raise ViewerError(f"scores for '{run.label}' cover {scores.size} tokens, the layout has "
                                  f"{run.layout.num_tokens}")
            tint = rank_heat(scores).reshape(run.layout.num_frames, run.layout.grid_h, run.layout.grid_w)[lf]
        img = draw_frame(viewer.frames[index], run.layout, run.kept_ids, lf, scale=scale,
                         dim=1.0 if tint is not None else dim, heat=tint,
                         color=KEPT_COLOR if tint is None else HEAT_OUTLINE)
        k = run.kept_in_frame(lf)
        where = "".join(f", seg {s + 1}" for s in run.segment_of(lf).values() if s >= 0)
        line2 = f"frame {index}: {k}/{tpf} kept ({100.0 * k / tpf:.0f}%){where}"
        band = 22 if img.shape[1] >= 200 else 16
        out.append((caption(caption(img, line2, height=band), run.label, height=band),
                    f"{run.label}: {line2}"))
    return out


def frame_view(viewer: Viewer, index: int, cols: int | None = None, min_side: int = MIN_SIDE,
               dim: float = 0.3, heat: Mapping[str, np.ndarray] | None = None, pad: int = 6) -> np.ndarray:
    """Source frame ``index`` for every run side by side (``cols`` per row; default all in one row),
    as ``frame_panels`` draws them, on a white sheet."""
    panels = [img for img, _ in frame_panels(viewer, index, min_side, dim, heat)]
    return contact_sheet(panels, cols=cols or len(panels), pad=pad, background=255)


# ---------------------------------------------------------------- retention timeline

@dataclass(frozen=True)
class Series:
    """One run's line on the timeline: kept share (%) per layout frame and its segment starts."""

    label: str
    percent: np.ndarray
    boundaries: dict[str, list[int]]          # segmentation -> starts after the first (> 0)


def timeline_series(viewer: Viewer) -> list[Series]:
    """A series per pruned run (the unpruned reference is 100% everywhere and left out)."""
    return [Series(r.label, 100.0 * np.asarray(r.frame_retention, np.float64),
                   {k: [s for s in v if s > 0] for k, v in r.segments.items()})
            for r in viewer.runs if not r.reference]


def timeline_figure(viewer: Viewer, index: int | None = None, width_in: float = 7.5) -> Figure:
    """Kept share per frame, a step line per pruned run; each recorded segment start is a dashed
    vertical line in the run's colour at the boundary before its first frame (x = start - 0.5), in
    a horizontal band of its own per segmenting run (so equal starts of two methods both show);
    ``index`` (a source frame) draws a grey cursor at its layout frame."""
    series = timeline_series(viewer)
    n_frames = viewer.runs[0].layout.num_frames
    fig = Figure(figsize=(width_in, 3.2), dpi=100)
    ax = fig.add_subplot()
    x = np.arange(n_frames)
    # runs that segment share the height, each its own band, so equal starts of two methods stay visible
    banded = [s.label for s in series if any(s.boundaries.values())]
    for i, s in enumerate(series):
        color = COLORS[i % len(COLORS)]
        ax.plot(x, s.percent, drawstyle="steps-mid", color=color, lw=1.6, label=_short(s.label),
                marker="o" if n_frames <= 16 else None, ms=3)
        if s.label in banded:
            j, k = banded.index(s.label), len(banded)
            for name, starts in s.boundaries.items():
                for b in starts:
                    ax.axvline(b - 0.5, ymin=j / k, ymax=(j + 1) / k, color=color, ls="--", lw=1.1, alpha=0.9,
                               gid=f"segment:{s.label}:{name}")
    if index is not None:
        ax.axvline(viewer.layout_frame(index), color="#888888", lw=4, alpha=0.25, gid="cursor")
    if any(s.boundaries for s in series):
        ax.plot([], [], color="#555555", ls="--", lw=0.9, label="segment start (run's colour)")
    ax.set_xlim(-0.5, n_frames - 0.5)
    ax.set_ylim(0, 105)
    ax.set_xlabel("frame" if viewer.runs[0].layout.frames_per_step == 1 else "frame pair (temporal patch)")
    ax.set_ylabel("visual tokens kept (%)")
    if series:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    else:
        ax.text(0.5, 0.5, "only the unpruned reference ran", ha="center", va="center", transform=ax.transAxes)
    ax.grid(alpha=0.25)
    ax.spines[["top", "right"]].set_visible(False)
    fig.subplots_adjust(left=0.08, right=0.70, top=0.95, bottom=0.15)   # legend on the right; no tight_layout pass
    return fig


def timeline_chart(viewer: Viewer, index: int | None = None, width_in: float = 7.5) -> np.ndarray:
    """``timeline_figure`` as an RGB image."""
    return _to_rgb(timeline_figure(viewer, index, width_in))


# ---------------------------------------------------------------- Pareto view

@dataclass(frozen=True)
class BenchPoint:
    """One benchmark row: a method at one setting, its accuracy and equivalent retention."""

    source: str
    label: str
    method: str
    equivalent_retention: float
    acc: float
    n: int


def _method_of(row: Mapping[str, Any]) -> str:
    m = str(row.get("method") or "")
    if m and m != "plan":
        return m
    return "+".join(str(s.get("method")) for s in row.get("plan") or []) or "none"


def load_benchmarks(paths: Sequence[str | Path] = BENCHMARKS, strict: bool = True
                    ) -> tuple[list[BenchPoint], list[str]]:
    """Rows with an accuracy from the accuracy benchmark's JSON files (rows that record an error,
    e.g. a target out of reach, are skipped), and one line per file naming its model, frames and
    questions. A missing or unreadable file is a ``ViewerError``; with ``strict=False`` it is
    skipped and its line says why (the demo's chart must not fail a finished run)."""
    points, sources = [], []
    for p in paths:
        path = Path(p)
        try:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise ViewerError(f"cannot read the benchmark file {path.name}: {e}") from None
            if not isinstance(data, dict) or not isinstance(data.get("results"), list):
                raise ViewerError(f"{path.name} is not an accuracy benchmark report (no 'results' list)")
        except ViewerError as e:
            if strict:
                raise
            sources.append(f"{path.name}: skipped ({e})")
            continue
        mode = "matched FLOPs" if data.get("mode") == "matched_flops" else "same kept share"
        sources.append(f"{path.name}: {data.get('model', '?')}, {data.get('frames', '?')} frames, "
                       f"{data.get('questions', '?')} questions, {mode}")
        for r in data["results"]:
            if not isinstance(r, dict) or r.get("acc") is None or r.get("equivalent_retention") is None:
                continue
            points.append(BenchPoint(path.name, str(r.get("label", "")), _method_of(r),
                                     float(r["equivalent_retention"]), float(r["acc"]), int(r.get("n") or 0)))
    return points, sources


def frontier(points: Sequence[BenchPoint]) -> list[BenchPoint]:
    """The Pareto front: points no other point beats in both accuracy and compute (less equivalent
    retention at no lower accuracy), by increasing equivalent retention."""
    front: list[BenchPoint] = []
    for p in sorted(points, key=lambda p: (p.equivalent_retention, -p.acc)):
        if not front or p.acc > front[-1].acc:
            front.append(p)
    return front


def expected_accuracy(points: Sequence[BenchPoint], method: str, x: float) -> float | None:
    """The benchmark's accuracy of ``method`` at equivalent retention ``x``: linear between its
    measured settings, the nearest setting's outside them; None when the benchmark lacks the method.
    Several files' rows for one method are pooled (mean accuracy at equal x)."""
    mine = [p for p in points if p.method == method]
    if not mine:
        return None
    xs = sorted({p.equivalent_retention for p in mine})
    ys = [float(np.mean([p.acc for p in mine if p.equivalent_retention == v])) for v in xs]
    return float(np.interp(x, xs, ys))


@dataclass(frozen=True)
class RunPoint:
    """The current run on the Pareto view: at its equivalent retention, at the benchmark accuracy
    of its method there (None: method not benchmarked; drawn at its own right/wrong, 1 or 0)."""

    label: str
    method: str
    equivalent_retention: float
    expected_acc: float | None
    right: bool | None


def run_points(rows: Sequence[Mapping[str, Any]], points: Sequence[BenchPoint]) -> list[RunPoint]:
    """The demo's result rows (``compare.run_rows``: label, method, equivalent_retention, right) as
    points on the benchmark's axes, the unpruned reference included (method ``none``)."""
    out = []
    for r in rows:
        x = float(r.get("equivalent_retention", 1.0))
        method = str(r.get("method") or "none")
        out.append(RunPoint(str(r.get("label", method)), method, x, expected_accuracy(points, method, x),
                            r.get("right")))
    return out


def pareto_figure(rows: Sequence[Mapping[str, Any]], paths: Sequence[str | Path] = BENCHMARKS,
                  width_in: float = 7.5) -> Figure:
    """Accuracy (benchmark) against equivalent retention: a line per benchmarked method the run used
    (coloured), the other methods as grey dots, the Pareto front over all rows as a black step line,
    and the run's points as numbered stars (green = right, red = wrong, hollow = no known answer)
    named in a second legend. Benchmark files that cannot be read are named in the title, not raised."""
    points, sources = load_benchmarks(paths, strict=False)
    mine = run_points(rows, points)
    used = [m for m in dict.fromkeys(p.method for p in mine) if m != "none"]
    fig = Figure(figsize=(width_in, 4.8), dpi=100)
    ax = fig.add_subplot()
    others = [p for p in points if p.method not in used and p.method != "none"]
    ax.scatter([100 * p.equivalent_retention for p in others], [100 * p.acc for p in others], s=12,
               color="#c8c8c8", zorder=1, label="other methods", gid="bench:others")
    front = frontier(points)
    ax.step([100 * p.equivalent_retention for p in front], [100 * p.acc for p in front], where="post",
            color="#222222", lw=1.0, alpha=0.7, zorder=2, label="Pareto front (benchmark)", gid="front")
    markers = dict(zip(dict.fromkeys(p.source for p in points), ("o", "s", "^", "D", "v", "P")))
    for i, m in enumerate(used):
        color, labelled = COLORS[i % len(COLORS)], False
        for src, marker in markers.items():
            pts = sorted((p for p in points if p.method == m and p.source == src),
                         key=lambda p: p.equivalent_retention)
            if pts:
                ax.plot([100 * p.equivalent_retention for p in pts], [100 * p.acc for p in pts], color=color,
                        marker=marker, ms=4, lw=1.2, zorder=3, gid=f"bench:{m}:{src}",
                        label=None if labelled else m)
                labelled = True
    if len(markers) > 1:
        for src, marker in markers.items():
            ax.plot([], [], color="#555555", marker=marker, ls="none", ms=4, label=src)
    ref = [p for p in points if p.method == "none"]
    if ref:
        ax.axhline(100 * float(np.mean([p.acc for p in ref])), color="#444444", ls=":", lw=1,
                   label="unpruned (benchmark)")
    bench_legend = ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    # the run's points: numbered stars, named in a legend of their own (labels beside close stars collide)
    drawn: list[tuple[float, float]] = []
    handles = []
    for i, p in enumerate(mine, 1):
        y = p.expected_acc if p.expected_acc is not None else (None if p.right is None else float(p.right))
        if y is None:
            continue
        x, y = 100 * p.equivalent_retention, 100 * y
        face = "none" if p.right is None else ("#2ca02c" if p.right else "#d62728")
        handles.append(ax.scatter([x], [y], marker="*", s=150, facecolors=face, edgecolors="#111111",
                                  linewidths=0.8, zorder=5, gid=f"run:{p.label}",
                                  label=f"{i}: {_short(p.label, 24)}{'' if p.right is None else ' ✓' if p.right else ' ✗'}"))
        near = sum(abs(x - a) < 4 and abs(y - b) < 4 for a, b in drawn)   # stagger numbers of close stars
        ax.annotate(str(i), (x, y), textcoords="offset points", xytext=(-3 + 9 * near, 7), fontsize=8,
                    fontweight="bold", zorder=6)
        drawn.append((x, y))
    if handles:
        ax.add_artist(bench_legend)
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(1.01, 0.0), fontsize=7, frameon=False,
                  title="this run: ✓ right, ✗ wrong, hollow:\nno known answer; y = benchmark", title_fontsize=7,
                  alignment="left")
    ax.set_xlim(0, 105)
    if not points:
        ax.text(0.5, 0.5, "no benchmark rows to compare with", ha="center", va="center", transform=ax.transAxes)
    low = min([p.acc for p in points] + [b / 100 for _, b in drawn] + [1.0])
    ax.set_ylim(max(0.0, 100 * low - 5), 104)
    ax.set_xlabel("equivalent retention: visual share with the same prefill FLOPs (%)")
    ax.set_ylabel("accuracy on the benchmark (%)")
    ax.set_title("\n".join(sources), fontsize=7, loc="left")
    ax.grid(alpha=0.25)
    ax.spines[["top", "right"]].set_visible(False)
    fig.subplots_adjust(left=0.08, right=0.66, top=0.87, bottom=0.11)   # legend on the right; no tight_layout pass
    return fig


def pareto_chart(rows: Sequence[Mapping[str, Any]], paths: Sequence[str | Path] = BENCHMARKS,
                 width_in: float = 7.5) -> np.ndarray:
    """``pareto_figure`` as an RGB image."""
    return _to_rgb(pareto_figure(rows, paths, width_in))


# ---------------------------------------------------------------- score heatmaps

def scores_of(result: Any) -> dict[str, np.ndarray]:
    """The scores a run's stages recorded (``Engine.run(record_scores=True)``), [num_tokens] each over
    ORIGINAL ids (NaN = not scored: pruned before that stage). A name two stages recorded (HieraVid's
    relevance before the LLM and entering each later stage) is told apart by where it was taken."""
    raw = [(st, name, v) for st in getattr(result, "stages", []) or [] for name, v in (st.scores or {}).items()]
    counts: dict[str, int] = {}
    for _, name, _ in raw:
        counts[name] = counts.get(name, 0) + 1
    out = {}
    for st, name, v in raw:
        key = name if counts[name] == 1 else f"{name} ({'pre-LLM' if st.layer is None else f'layer {st.layer}'})"
        out[key] = np.asarray(v.cpu() if hasattr(v, "cpu") else v, np.float64)
    return out


def record_scores(adapter: Any, vw: Viewer, timing: Any = None) -> dict[str, dict[str, np.ndarray]]:
    """Scores per pruned run (label -> name -> [num_tokens]) by running each run's plan again on the
    same frames and question with ``record_scores`` on and one answer token (the reference and
    methods that record nothing get an empty dict). Costs one vision encode and one prefill per run,
    only when called. ``timing``: the clip's ``VideoTiming`` for models whose positions use it."""
    from pruning_core.engine import Engine
    eng = Engine(adapter)
    prep = eng.prepare(vw.frames, vw.question or "", timing)
    out: dict[str, dict[str, np.ndarray]] = {}
    for run in vw.runs:
        if run.reference:
            continue
        res = eng.run(prep, run.plan, max_new_tokens=1, positions=run.positions, record_scores=True)
        out[run.label] = scores_of(res)
    return out


def heat_for(scores: Mapping[str, Mapping[str, np.ndarray]], after_posc: bool = True) -> dict[str, np.ndarray]:
    """One score row per run for ``frame_panels(heat=...)``: ShaRP's attention after PosC (or before,
    with ``after_posc=False``), else the run's attention, else the first score it recorded
    (SharpV importance, HieraVid's pre-LLM relevance)."""
    out = {}
    for label, named in scores.items():
        if not named:
            continue
        prefer = ["attention after PosC", "attention"] if after_posc else ["attention"]
        name = next((n for n in prefer if n in named), next(iter(named)))
        out[label] = np.asarray(named[name], np.float64)
    return out


# ---------------------------------------------------------------- the all-frames sheet

def sheet_height(n_runs: int, n_frames: int, aspect: float = 1.0, max_pixels: int = SHEET_PIXELS,
                 lo: int = SHEET_MIN_H, hi: int = SHEET_MAX_H) -> int:
    """Thumbnail height for the overlay sheet (a row of ``n_frames`` thumbnails per run) so that it
    holds about ``max_pixels`` at most, within [``lo``, ``hi``]: WebP encoding time grows with the
    pixels (7 runs x 64 frames at 112 px: 7.2 MP, ~1 s), and the frame viewer shows any frame at
    full size. ``aspect``: frame width / height."""
    per_px2 = max(1, n_runs) * max(1, n_frames) * max(aspect, 1e-3)
    return int(max(lo, min(hi, math.floor(math.sqrt(max_pixels / per_px2)))))


def _short(text: str, n: int = 30) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
