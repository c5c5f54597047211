"""Write graphs as ComfyUI UI-format workflows (what the editor saves and loads).

``GraphBuilder`` collects nodes with their widget values and links, then ``to_ui`` lays them
out in a grid (columns by depth, a tall column wrapped into sub-columns, zoom fitted to 1600×1000) and serialises them the way ComfyUI's editor does: ``inputs`` hold
the link sockets (plus widgets fed by a link), ``outputs`` every return slot, and
``widgets_values`` the widget values in ``INPUT_TYPES`` order (with the ``control_after_generate``
value seed widgets carry). The demo and the shipped example workflows are built with it.
"""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

import networkx as nx

from .spec import input_specs


@dataclass
class _Node:
    id: int
    type: str
    values: dict[str, Any]
    links: dict[str, tuple[int, int]]
    title: str | None = None
    mode: int = 0
    note: str | None = None


@dataclass
class GraphBuilder:
    classes: Mapping[str, type]
    nodes: list[_Node] = field(default_factory=list)

    def add(self, class_type: str, title: str | None = None, **inputs) -> int:
        """Add a node; an input given as ``(node_id, slot)`` is a link, anything else a widget value.
        Widgets left out take their declared defaults."""
        if class_type not in self.classes:
            raise KeyError(f"unknown node type {class_type}")
        values, links = {}, {}
        for name, v in inputs.items():
            (links if isinstance(v, tuple) else values)[name] = v
        for spec in input_specs(self.classes[class_type]):
            if spec.is_widget and spec.name not in values and spec.name not in links:
                default = spec.options.get("default")
                if default is None:
                    choices = spec.choices
                    default = choices[0] if choices else {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[
                        spec.type_name]
                values[spec.name] = default
        node = _Node(len(self.nodes) + 1, class_type, values, links, title)
        self.nodes.append(node)
        return node.id

    def note(self, text: str, title: str = "Note") -> int:
        node = _Node(len(self.nodes) + 1, "Note", {}, {}, title, note=text)
        self.nodes.append(node)
        return node.id

    def to_api(self) -> dict[str, dict]:
        out = {}
        for n in self.nodes:
            if n.note is not None:
                continue
            inputs = dict(n.values)
            inputs.update({k: [str(a), b] for k, (a, b) in n.links.items()})
            out[str(n.id)] = {"class_type": n.type, "inputs": inputs, "_meta": {"title": n.title or n.type}}
        return out

    def to_ui(self, title: str = "") -> dict:
        g = nx.DiGraph()
        g.add_nodes_from(n.id for n in self.nodes)
        for n in self.nodes:
            for src, _ in n.links.values():
                g.add_edge(src, n.id)
        depth = {}
        for nid in nx.topological_sort(g):
            depth[nid] = max((depth[p] + 1 for p in g.predecessors(nid)), default=0)
        notes = [n for n in self.nodes if n.note is not None]
        for n in notes:  # notes sit in the first column, above the loaders
            depth[n.id] = 0

        links: list[list] = []
        ui_nodes = []
        out_links: dict[tuple[int, int], list[int]] = {}
        order = sorted(self.nodes, key=lambda n: (depth[n.id], n.note is None, n.id))
        for k, n in enumerate(order):
            if n.note is not None:
                size = [NODE_W, 140]
                ui_nodes.append({"id": n.id, "type": "Note", "pos": [0, 0], "size": size, "flags": {},
                                 "order": k, "mode": 0, "inputs": [], "outputs": [],
                                 "properties": {"text": ""}, "widgets_values": [n.note],
                                 "color": "#432", "bgcolor": "#653", **({"title": n.title} if n.title else {})})
                continue
            cls = self.classes[n.type]
            specs = [s for s in input_specs(cls) if s.section != "hidden"]
            inputs = []
            for s in specs:
                linked = s.name in n.links
                if s.is_widget and not linked:
                    continue
                entry = {"name": s.name, "type": s.type_name, "link": None}
                if s.is_widget:
                    entry["widget"] = {"name": s.name}
                if linked:
                    src, slot = n.links[s.name]
                    lid = len(links) + 1
                    links.append([lid, src, slot, n.id, len(inputs), self._return_type(src, slot)])
                    out_links.setdefault((src, slot), []).append(lid)
                    entry["link"] = lid
                inputs.append(entry)
            widgets = []
            for s in specs:
                if s.is_widget:
                    widgets.append(n.values.get(s.name) if s.name not in n.links else self._widget_default(s))
                    if s.has_control_value:
                        widgets.append("fixed")
            rets = cls.RETURN_TYPES
            names = getattr(cls, "RETURN_NAMES", rets)
            outputs = [{"name": names[i], "type": rets[i], "links": [], "slot_index": i} for i in range(len(rets))]
            n_widgets = sum(1 for s in specs if s.is_widget)
            size = [NODE_W, 46 + 24 * (max(len(inputs), len(outputs)) + n_widgets)]
            area = getattr(cls, "RESULT_AREA", None)
            if area is not None:  # the editor grows the node to show results: leave room, so nothing overlaps
                size = [max(size[0], area[0]), size[1] + area[1]]
            elif getattr(cls, "OUTPUT_NODE", False):
                size[1] += 120
            node = {"id": n.id, "type": n.type, "pos": [0, 0], "size": size, "flags": {}, "order": k,
                    "mode": n.mode, "inputs": inputs, "outputs": outputs,
                    "properties": {"Node name for S&R": n.type}, "widgets_values": widgets}
            if n.title:
                node["title"] = n.title
            ui_nodes.append(node)
        by_id = {u["id"]: u for u in ui_nodes}
        for (src, slot), lids in out_links.items():
            by_id[src]["outputs"][slot]["links"] = lids
        scale, offset = lay_out(ui_nodes, depth)
        ui_nodes.sort(key=lambda u: u["id"])
        return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, "videoprune/" + title)), "revision": 0,
                "last_node_id": max((n.id for n in self.nodes), default=0), "last_link_id": len(links),
                "nodes": ui_nodes, "links": links, "groups": [], "config": {},
                "extra": {"ds": {"scale": scale, "offset": offset}, "videoprune": {"title": title}},
                "version": 0.4}

    def _return_type(self, node_id: int, slot: int) -> str:
        n = self.nodes[node_id - 1]
        return self.classes[n.type].RETURN_TYPES[slot]

    @staticmethod
    def _widget_default(spec) -> Any:
        return spec.options.get("default", "")


VIEWPORT = (1600, 1000)   # a common window: every example opens fitted to the editor's canvas in it
# What ComfyUI's editor (frontend 1.35) leaves of that window to the graph: the side tool bar ends
# 59 px from the left, the workflow tabs and the floating Run bar 99 px from the top (measured in
# the editor, tools/check_editor.py); the graph keeps SCREEN_MARGIN px clear of those edges.
CANVAS_INSET = (59, 99)
SCREEN_MARGIN = 20
# The frontend draws node text only at ds.scale >= MinFontSizeForLOD / (NODE_TEXT_SIZE * sqrt(dpr))
# = 8 / 14 = 0.571 at dpr 1 (its defaults); below that a graph is boxes. Examples must open above it.
TEXT_ZOOM = 8 / 14
NODE_W = 300
GAP_X, GAP_Y, TITLE_H = 40, 30, 30


def canvas_box(viewport: tuple[int, int] = VIEWPORT) -> tuple[int, int]:
    """Screen pixels of the editor's canvas available to the graph."""
    return (viewport[0] - CANVAS_INSET[0] - 2 * SCREEN_MARGIN, viewport[1] - CANVAS_INSET[1] - 2 * SCREEN_MARGIN)


def lay_out(ui_nodes: list[dict], depth: dict[int, int], viewport: tuple[int, int] = VIEWPORT) -> tuple[float, list[float]]:
    """Place nodes in columns by depth (left to right, as data flows), wrapping a column that grows
    too tall into sub-columns side by side: a grid. The wrap height is chosen to make the whole graph
    fit the editor's canvas in ``viewport`` at the largest zoom; returns that zoom (at most 1) and the
    canvas offset that puts the graph's top-left corner just inside the canvas, for ``extra.ds``."""
    order = sorted(ui_nodes, key=lambda u: (depth[u["id"]], u["type"] != "Note", u["order"]))
    heights = [u["size"][1] + TITLE_H for u in order]
    candidates = sorted({h for h in _column_heights(order, depth)} | {max(heights)})
    box = canvas_box(viewport)
    best = None
    for cap in candidates:
        w, h = _place(order, depth, cap, apply=False)
        scale = min(1.0, box[0] / w, box[1] / h)
        if best is None or scale > best[0] + 1e-9:
            best = (scale, cap)
    _place(order, depth, best[1], apply=True)
    scale = math.floor(best[0] * 100) / 100
    # LiteGraph draws graph point p at (p + offset) * scale on the canvas
    offset = [round((CANVAS_INSET[0] + SCREEN_MARGIN) / scale, 1), round((CANVAS_INSET[1] + SCREEN_MARGIN) / scale, 1)]
    return scale, offset


def _column_heights(order, depth) -> list[int]:
    """Every height a column could be cut at: the running heights of each depth's nodes."""
    out, run = [], {}
    for u in order:
        d = depth[u["id"]]
        run[d] = run.get(d, 0) + u["size"][1] + TITLE_H + GAP_Y
        out.append(run[d])
    return out


def _place(order, depth, cap: int, apply: bool) -> tuple[int, int]:
    """Positions with columns wrapped at ``cap`` (graph units, title bars included); the graph's
    top-left corner (a title bar's) is (0, 0). Returns the graph's (width, height)."""
    x, y, col_w, right, bottom, d_prev = 0, 0, 0, 0, 0, None
    for u in order:
        w, h = u["size"][0], u["size"][1] + TITLE_H
        d = depth[u["id"]]
        if d_prev is not None and (d != d_prev or y + h > cap):
            x, y, col_w = x + col_w + GAP_X, 0, 0   # next depth, or this one's next sub-column
        d_prev = d
        if apply:
            u["pos"] = [x, y + TITLE_H]
        col_w = max(col_w, w)
        right, bottom = max(right, x + w), max(bottom, y + h)
        y += h + GAP_Y
    return right, bottom
