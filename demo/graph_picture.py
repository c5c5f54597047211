"""A picture of a workflow: nodes as boxes in dependency columns, links as arrows.

Columns come from networkx's topological generations (loaders left, outputs right); a
workflow with a cycle falls back to a seeded spring layout so it can still be shown next to
its "cycle" error. Nodes with validation errors get a red border.
"""
from __future__ import annotations

from typing import Mapping

import networkx as nx
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

COLORS = {"loader": "#d8f0d2", "stage": "#ffe2b3", "output": "#cfe0ff", "other": "#eeeeee", "unknown": "#dddddd"}
ERROR_EDGE = "#d62728"
BOX_W, BOX_H = 0.8, 0.5


def workflow_digraph(prompt: Mapping[str, Mapping]) -> nx.DiGraph:
    """Nodes of an API prompt and its links (source → target, labelled with the input name)."""
    g = nx.DiGraph()
    for node_id, node in prompt.items():
        g.add_node(str(node_id), class_type=str(node.get("class_type", "?")),
                   title=str((node.get("_meta") or {}).get("title") or node.get("class_type", "?")))
    for node_id, node in prompt.items():
        for name, val in (node.get("inputs") or {}).items():
            if isinstance(val, list) and len(val) == 2 and str(val[0]) in g:
                src = str(val[0])
                if g.has_edge(src, str(node_id)):
                    g.edges[src, str(node_id)]["inputs"].append(name)
                else:
                    g.add_edge(src, str(node_id), inputs=[name])
    return g


def layered_positions(g: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """(x, y) per node: x = dependency depth, y = rank within the column (top to bottom)."""
    if g.number_of_nodes() == 0:
        return {}
    if not nx.is_directed_acyclic_graph(g):
        pos = nx.spring_layout(g, seed=0)
        return {n: (float(x) * 3.0, float(y) * 3.0) for n, (x, y) in pos.items()}
    depth: dict[str, int] = {}
    for n in nx.topological_sort(g):
        depth[n] = max((depth[p] + 1 for p in g.predecessors(n)), default=0)
    cols: dict[int, list[str]] = {}
    for n in sorted(g.nodes, key=_id_key):
        cols.setdefault(depth[n], []).append(n)
    return {n: (float(d) * 1.25, -float(i) * 0.8) for d, ns in cols.items() for i, n in enumerate(ns)}


def node_kind(class_type: str, classes: Mapping[str, type]) -> str:
    cls = classes.get(class_type)
    if cls is None:
        return "unknown"
    if getattr(cls, "METHOD", None):
        return "stage"
    if getattr(cls, "OUTPUT_NODE", False):
        return "output"
    if "loaders" in str(getattr(cls, "CATEGORY", "")):
        return "loader"
    return "other"


def draw_workflow(prompt: Mapping[str, Mapping], classes: Mapping[str, type],
                  errors: Mapping[str, object] | None = None, max_width_in: float = 14.0) -> np.ndarray:
    """RGB image of the workflow; nodes named in ``errors`` (node id → anything) outlined in red."""
    g = workflow_digraph(prompt)
    pos = layered_positions(g)
    errors = {str(k) for k in (errors or {})}
    if pos:
        xs = [p[0] for p in pos.values()]
        ys = [p[1] for p in pos.values()]
        span_x, span_y = max(xs) - min(xs) + 1.4, max(ys) - min(ys) + 1.0
    else:
        xs, ys, span_x, span_y = [0.0], [0.0], 2.0, 1.0
    scale = min(2.2, max_width_in / span_x)
    fig = Figure(figsize=(max(4.0, span_x * scale), max(2.0, span_y * scale)), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.5, max(ys) + 0.5)
    ax.set_aspect("equal")
    ax.axis("off")
    if not pos:
        ax.text(0.0, 0.0, "(empty workflow)", ha="center", va="center")
    for src, dst, data in g.edges(data=True):
        (x0, y0), (x1, y1) = pos[src], pos[dst]
        ax.add_patch(FancyArrowPatch((x0 + BOX_W / 2, y0), (x1 - BOX_W / 2, y1), arrowstyle="-|>",
                                     mutation_scale=10, color="#666666", lw=0.9,
                                     connectionstyle="arc3,rad=0.0", zorder=1))
        # label near the target end: links into one node fan in, so their labels stay apart
        lx, ly = x0 + 0.72 * (x1 - x0), y0 + 0.72 * (y1 - y0)
        ax.text(lx, ly + 0.03, ",".join(data["inputs"]), fontsize=6, color="#555555", ha="center", zorder=4,
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})
    for n, (x, y) in pos.items():
        ct = g.nodes[n]["class_type"]
        bad = n in errors
        ax.add_patch(FancyBboxPatch((x - BOX_W / 2, y - BOX_H / 2), BOX_W, BOX_H,
                                    boxstyle="round,pad=0.02,rounding_size=0.06",
                                    facecolor=COLORS[node_kind(ct, classes)],
                                    edgecolor=ERROR_EDGE if bad else "#555555", lw=2.2 if bad else 0.9, zorder=2))
        title = g.nodes[n]["title"]
        label = ct.removeprefix("VideoPrune") if title == ct else title
        ax.text(x, y + 0.1, f"#{n}", ha="center", va="center", fontsize=6, color="#333333", zorder=3)
        ax.text(x, y - 0.05, _fit(label, 26), ha="center", va="center", fontsize=7, zorder=3,
                fontweight="bold" if bad else "normal")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])


def _fit(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _id_key(node_id: str):
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)
